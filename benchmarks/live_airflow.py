"""Benchmarks 4 and 5 in a real Airflow: worker-slot seconds per sensor mode, and reaction time.

One throwaway AIRFLOW_HOME (SQLite, LocalExecutor) runs the api-server (execution API),
dag-processor, scheduler and triggerer, started with the integration tests' helpers
(``tests/integration/airflow_run.py``), against the simulator as a separate process. The DAGs
are in ``benchmarks/dags/bench_live.py``; the DAG runs go one after another.

* Worker slots: K videos of D s, submitted together, each waited for by a ``VideoFetchSensor``
  (mapped) in poke, reschedule and deferrable mode. A worker slot is held while a task instance
  runs on a worker; each run (the first, every reschedule poke, the resumption after a deferral)
  is read from the task instance's own log, first to last line. Why not the tables: in Airflow
  3.3 ``task_reschedule.start_date`` is written after its ``end_date`` (duration 0) and
  ``task_instance.start_date`` restarts with every reschedule run, while for a deferred task it
  spans the deferral; the TI span is still reported as a cross-check.
* Reaction time: K chains ``generate_i`` (``ModelsLabTextToVideoOperator``, deferrable) >>
  ``downstream_i`` with durations spread over [REACT_MIN, REACT_MAX]; reaction = the downstream
  task's start minus the moment the simulator marked the video ready (``/_sim/jobs`` ready_at),
  split into detection (ready until the successful fetch, from the simulator's request log)
  and Airflow overhead (that fetch until the downstream start). The bound is the poll interval
  the policy uses at that moment (``PollPolicy.next_delay`` at the job's ready time).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.common import Goal, Result, SimulatorProcess, fmt, median, percentile, table

DAGS = Path(__file__).resolve().parent / "dags"
MODES = ("poke", "reschedule", "deferrable")


@dataclass(frozen=True)
class Size:
    videos: int
    duration: float
    poke: float
    react_min: float
    react_max: float


FULL = Size(videos=20, duration=60.0, poke=15.0, react_min=20.0, react_max=90.0)
#: quick videos last long enough that a mapped sensor, started seconds after the submit on a busy
#: machine, still finds them running and defers (a 6 s video was sometimes done at the first poke)
QUICK = Size(videos=2, duration=15.0, poke=2.0, react_min=4.0, react_max=8.0)
#: consecutive runs of the reaction DAG in one Airflow (the goal must hold on each)
REACTION_RUNS = 5


def _ts(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value)).timestamp()


#: one Python process triggers several DAGs (the CLI costs ~4 s of start-up per call here)
TRIGGER_SCRIPT = """
import sys
from airflow.api.client import get_current_api_client
client = get_current_api_client()
for dag_id in sys.argv[1:]:
    client.trigger_dag(dag_id=dag_id)
"""


def _trigger(af: Any, dag_ids: list[str], known: frozenset[str] = frozenset()) -> dict[str, str]:
    """Trigger ``dag_ids`` at once; their new run ids (``known``: run ids that existed before)."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", TRIGGER_SCRIPT, *dag_ids],
        env=af.env,
        cwd=af.home,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"triggering {dag_ids} failed: {done.stdout}{done.stderr[-3000:]}")
    return {
        dag_id: af.wait_until(
            f"a run of {dag_id}",
            lambda d=dag_id: [
                row for row in af.query("SELECT run_id FROM dag_run WHERE dag_id=?", d) if row[0] not in known
            ],
            60,
        )[0][0]
        for dag_id in dag_ids
    }


def _finish(af: Any, dag_id: str, run_id: str, timeout: float) -> None:
    state = af.wait_until(
        f"{dag_id} to finish",
        lambda: af.query(
            "SELECT state FROM dag_run WHERE dag_id=? AND run_id=? AND state IN ('success','failed')",
            dag_id,
            run_id,
        ),
        timeout,
        interval=1.0,
    )[0][0]
    if state != "success":
        states = af.query("SELECT task_id, map_index, state FROM task_instance WHERE run_id=?", run_id)
        failed = [(t, m) for t, m, st in states if st == "failed"]
        detail = ""
        if failed:  # the first failed task's own log says why
            task_id, map_index = failed[0]
            folder = af.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
            if map_index >= 0:
                folder = folder / f"map_index={map_index}"
            logs = sorted(folder.glob("attempt=*.log"))
            detail = f"\n--- {task_id}[{map_index}] log ---\n" + (
                logs[-1].read_text()[-6000:] if logs else ""
            )
        raise RuntimeError(f"{dag_id} ended {state}: {states}{detail}\n{af.logs_tail()}")


def run(quick: bool = False, size: Size | None = None) -> list[Result]:
    size = size or (QUICK if quick else FULL)
    from tests.integration.airflow_run import AirflowComponents, free_port, live_env, migrate

    started = time.perf_counter()
    keep = os.environ.get("BENCH_KEEP_HOME")  # debugging: keep the AIRFLOW_HOME for inspection
    with SimulatorProcess() as sim, tempfile.TemporaryDirectory(prefix="bench-airflow-") as scratch:
        tmp = keep or scratch
        home = Path(tmp) / "airflow"
        migrate(home)
        shutil.copy(DAGS / "bench_live.py", home / "dags" / "bench_live.py")
        env = live_env(
            home,
            sim.url,
            api_port=free_port(),
            parallelism=size.videos + 2,
            BENCH_VIDEOS=str(size.videos),
            BENCH_DURATION=f"{size.duration:g}",
            BENCH_POKE=f"{size.poke:g}",
            BENCH_REACT_MIN=f"{size.react_min:g}",
            BENCH_REACT_MAX=f"{size.react_max:g}",
            AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG=str(size.videos + 2),
            AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
        )
        with AirflowComponents(home, env) as af:
            af.start("api-server", "dag-processor", "scheduler", "triggerer")
            af.wait_until(
                "the benchmark DAGs to be parsed",
                lambda: len(af.query("SELECT dag_id FROM dag WHERE dag_id LIKE 'bench_%'")) >= 4,
                180,
            )
            setup = time.perf_counter() - started
            slot_dags = [f"bench_slots_{mode}" for mode in MODES]
            limit = 600 + max(size.duration, size.react_max) * 4
            took: dict[str, float] = {}
            if quick:  # everything at once: quick figures only have to be well formed
                runs = _trigger(af, [*slot_dags, "bench_reaction"])
                for dag_id, run_id in runs.items():
                    _finish(af, dag_id, run_id, limit)
                    took[dag_id] = time.perf_counter() - started - setup
            else:  # one run at a time, so the modes do not compete for the two cores
                runs = {}
                for dag_id in slot_dags:
                    begun = time.perf_counter()
                    runs.update(_trigger(af, [dag_id]))
                    _finish(af, dag_id, runs[dag_id], limit)
                    took[dag_id] = time.perf_counter() - begun
            reaction_runs = [runs["bench_reaction"]] if quick else []
            begun = time.perf_counter()
            while len(reaction_runs) < (1 if quick else REACTION_RUNS):
                run_id = _trigger(af, ["bench_reaction"], frozenset(reaction_runs))["bench_reaction"]
                _finish(af, "bench_reaction", run_id, limit)
                reaction_runs.append(run_id)
            if not quick:
                took["bench_reaction"] = time.perf_counter() - begun
            slots = {
                mode: slot_seconds(af, home, f"bench_slots_{mode}", runs[f"bench_slots_{mode}"], mode)
                for mode in MODES
            }
            reactions = [reaction_times(af, sim, run_id, size) for run_id in reaction_runs]
            (home / "dags" / "bench_live.py").unlink()
    return [
        _slots_result(slots, size, quick, setup + sum(took[d] for d in slot_dags)),
        _reaction_result(reactions, size, quick, took["bench_reaction"], setup),
    ]


# ----------------------------------------------------------------------------- worker slots


def slot_seconds(af: Any, home: Path, dag_id: str, run_id: str, mode: str) -> dict[str, Any]:
    """Worker-slot seconds of the ``wait`` task instances of one run, from their records."""
    tis = af.query(
        "SELECT map_index, start_date, end_date, try_number FROM task_instance "
        "WHERE dag_id=? AND run_id=? AND task_id='wait'",
        dag_id,
        run_id,
    )
    total = recorded = parsing = 0.0
    runs = retried = 0
    for map_index, start, end, try_number in tis:
        start_ts, end_ts = _ts(start), _ts(end)
        if start_ts is None or end_ts is None:
            raise RuntimeError(f"{dag_id} wait[{map_index}] has no start/end: {start}, {end}")
        # every try counts: a failed try held its slot too (the DAG gives the sensors one retry)
        segments = [
            run
            for attempt in range(1, max(int(try_number), 1) + 1)
            for run in _runs_from_log(home, dag_id, run_id, "wait", map_index, attempt)
        ]
        retried += max(int(try_number), 1) - 1
        if not segments:  # no log: fall back on the task instance's own span
            segments = [(start_ts, start_ts, end_ts)]
        total += sum(last - first for first, _, last in segments)
        parsing += sum(parsed - first for first, parsed, _ in segments)
        recorded += end_ts - start_ts
        runs += len(segments)
    return {
        "mode": mode,
        "task_instances": len(tis),
        "worker_runs": runs,
        "retries": retried,
        "slot_seconds": total,
        # of which the worker spent parsing the DAG file, once per run
        "parse_seconds": parsing,
        # start_date..end_date as stored: the whole wait for poke and deferrable (deferred time
        # included), only the last poke for reschedule (Airflow 3 restarts start_date per run)
        "ti_span_seconds": recorded,
    }


def _runs_from_log(
    home: Path, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int
) -> list[tuple[float, float, float]]:
    """(first, parsed, last) timestamps of each worker run in a try's JSON task log.

    Every run on a worker (the first one, each reschedule poke, the resumption after a deferral)
    opens with a "Pre Execute" group; ``parsed`` is when the worker finished parsing the DAG file
    (Airflow's own per-run cost). The triggerer writes to a separate ``.trigger`` file.
    """
    folder = home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    if map_index >= 0:
        folder = folder / f"map_index={map_index}"
    path = folder / f"attempt={try_number}.log"
    if not path.exists():
        return []
    runs: list[list[float]] = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        when = _ts(record.get("timestamp"))
        if when is None:
            continue
        event = str(record.get("event", ""))
        if "::group::Pre Execute" in event or not runs:
            runs.append([when, when, when])
        else:
            runs[-1][2] = when
            if "startup parse complete" in event:
                runs[-1][1] = when
    return [(first, parsed, last) for first, parsed, last in runs]


def _slots_result(slots: dict[str, dict[str, Any]], size: Size, quick: bool, seconds: float) -> Result:
    poke = slots["poke"]["slot_seconds"]
    rows = []
    for mode in MODES:
        s = slots[mode]
        rows.append(
            {
                **s,
                "share_of_poke": s["slot_seconds"] / poke if poke else float("nan"),
                "per_video": s["slot_seconds"] / max(s["task_instances"], 1),
            }
        )
    deferrable = rows[2]
    unparsed = (deferrable["slot_seconds"] - deferrable["parse_seconds"]) / max(
        poke - slots["poke"]["parse_seconds"], 1e-9
    )
    markdown = "\n\n".join(
        [
            f"{size.videos} videos of {size.duration:g} s, submitted together, each waited for by a mapped "
            f"`VideoFetchSensor` (poke interval {size.poke:g} s; the deferrable trigger polls at the same "
            f"pace). LocalExecutor with parallelism {size.videos + 2}, SQLite. Worker-slot seconds from "
            "each task instance's own log: every run on a worker (first run, each reschedule poke, the "
            "resumption after a deferral) from its first to its last line; TI span = `task_instance` "
            "end_date - start_date, as a cross-check (whole wait for poke and deferrable, last poke only "
            "for reschedule). Process start-up per run is not included in either. A deferrable sensor "
            "runs on a worker twice per wait (it pokes once before deferring, so a finished video needs "
            "no triggerer round trip, then resumes to push the URLs); both runs are short, and much of "
            "them is Airflow parsing the DAG file, which grows with the number of task processes "
            "starting at once on a small machine.",
            table(
                [
                    "mode",
                    "task instances",
                    "retries",
                    "worker runs",
                    "worker-slot s",
                    "of which DAG parsing (s)",
                    "per video (s)",
                    "vs poke",
                    "TI span s",
                ],
                [
                    [
                        r["mode"],
                        r["task_instances"],
                        r["retries"],
                        r["worker_runs"],
                        fmt(r["slot_seconds"]),
                        fmt(r["parse_seconds"]),
                        fmt(r["per_video"]),
                        f"{r['share_of_poke'] * 100:.1f} %",
                        fmt(r["ti_span_seconds"]),
                    ]
                    for r in rows
                ],
            ),
        ]
    )
    return Result(
        name="slots",
        title="4. Worker slots (real Airflow)",
        rows=rows,
        goals=[
            Goal(
                "deferrable <= 5 % of poke-mode worker-slot seconds",
                f"{deferrable['slot_seconds']:.1f} s vs {poke:.1f} s "
                f"({deferrable['share_of_poke'] * 100:.1f} %; without the per-run DAG parsing: "
                f"{unparsed * 100:.1f} %)",
                deferrable["share_of_poke"] <= 0.05,
            )
        ],
        markdown=markdown,
        commands=[f"python benchmarks/run.py --only slots{' --quick' if quick else ''}"],
        seconds=seconds,
    )


# ----------------------------------------------------------------------------- reaction time


def reaction_times(af: Any, sim: SimulatorProcess, run_id: str, size: Size) -> list[dict[str, Any]]:
    from modelslab_provider.client.policy import PollPolicy

    jobs = sim.admin("/_sim/jobs")
    log = sim.admin("/_sim/requests")
    policy = PollPolicy(min_interval=5.0, max_interval=60.0)  # the operator's defaults
    out = []
    for i in range(size.videos):
        xcom = af.query(
            "SELECT value FROM xcom WHERE dag_id='bench_reaction' AND run_id=? AND task_id=? "
            "AND key='request_id'",
            run_id,
            f"generate_{i}",
        )
        request_id = json.loads(xcom[0][0]) if isinstance(xcom[0][0], str | bytes) else xcom[0][0]
        job = jobs[str(request_id)]
        ready = float(job["ready_at"])
        fetches = sorted(
            e["ts"] for e in log if e["path"].endswith(f"/fetch/{request_id}") and e["ts"] >= ready
        )
        seen = fetches[0] if fetches else float("nan")
        start = _ts(
            af.query(
                "SELECT start_date FROM task_instance "
                "WHERE dag_id='bench_reaction' AND run_id=? AND task_id=?",
                run_id,
                f"downstream_{i}",
            )[0][0]
        )
        assert start is not None
        out.append(
            {
                "index": i,
                "request_id": str(request_id),
                "duration": ready - float(job["submitted_at"]),
                "detection": seen - ready,
                "airflow": start - seen,
                "reaction": start - ready,
                "bound": policy.next_delay(elapsed=ready - float(job["submitted_at"]), eta=float(job["eta"])),
            }
        )
    return out


def _reaction_result(
    runs: list[list[dict[str, Any]]], size: Size, quick: bool, seconds: float, setup: float
) -> Result:
    """Per run: median and p95 of reaction, detection and Airflow overhead; the goal holds on each run."""
    everything = [r for run in runs for r in run]
    bound = max(r["bound"] for r in everything)
    limit = bound + 2.0
    per_run = []
    for number, reactions in enumerate(runs, 1):
        react = [r["reaction"] for r in reactions]
        detect = [r["detection"] for r in reactions]
        overhead = [r["airflow"] for r in reactions]
        per_run.append(
            {
                "run": number,
                "median": median(react),
                "p95": percentile(react, 95),
                "detection_median": median(detect),
                "detection_p95": percentile(detect, 95),
                "airflow_median": median(overhead),
                "airflow_p95": percentile(overhead, 95),
                "max": max(react),
            }
        )
    rows: list[dict[str, Any]] = [{"figure": f"run {r['run']}", **r} for r in per_run]
    markdown = "\n\n".join(
        [
            f"{size.videos} chains `generate_i` (`ModelsLabTextToVideoOperator`, deferrable, default poll "
            "settings) >> `downstream_i`, durations spread over "
            f"{size.react_min:g}-{size.react_max:g} s, the "
            "simulator reporting the true duration as ETA; the DAG runs "
            f"{len(runs)} time(s) in a row in the same Airflow. The policy's bound is the poll interval in "
            f"force when a video becomes ready: {bound:.1f} s at most here. Reaction = ready -> downstream "
            "start; detection = ready -> the successful fetch; Airflow = that fetch -> downstream start. "
            f"Airflow start-up took {setup:.0f} s (not counted).",
            table(
                [
                    "run",
                    "reaction median (s)",
                    "reaction p95 (s)",
                    "reaction max (s)",
                    "detection median / p95 (s)",
                    "Airflow median / p95 (s)",
                ],
                [
                    [
                        r["run"],
                        fmt(r["median"]),
                        fmt(r["p95"]),
                        fmt(r["max"]),
                        f"{fmt(r['detection_median'])} / {fmt(r['detection_p95'])}",
                        f"{fmt(r['airflow_median'])} / {fmt(r['airflow_p95'])}",
                    ]
                    for r in per_run
                ],
            ),
        ]
    )
    return Result(
        name="reaction",
        title="5. Reaction time (real Airflow, deferrable operator)",
        rows=[*rows, {"figure": "per video", "items": everything}],
        goals=[
            Goal(
                f"reaction p95 within the policy bound + 2 s ({limit:.1f} s) on each of {len(runs)} "
                "consecutive run(s)",
                "p95 "
                + ", ".join(f"{r['p95']:.1f}" for r in per_run)
                + " s (median "
                + ", ".join(f"{r['median']:.1f}" for r in per_run)
                + f" s; detection p95 up to {max(r['detection_p95'] for r in per_run):.1f} s, "
                f"Airflow p95 up to {max(r['airflow_p95'] for r in per_run):.1f} s)",
                all(r["p95"] <= limit and r["median"] <= limit for r in per_run),
            )
        ],
        markdown=markdown,
        commands=[f"python benchmarks/run.py --only reaction{' --quick' if quick else ''}"],
        seconds=seconds,
    )
