"""Issue 24 in a real Airflow: waits that end in the triggerer against waits resumed on a worker.

One Airflow (SQLite, LocalExecutor, one triggerer; ``benchmarks/dags/bench_end.py``), the arms
run one after another, alternating, so the load of the shared machine falls on each alike:

* worker-slot seconds of ``VIDEOS`` sensors per arm: poke mode; deferrable resumed on a worker
  (``end_from_trigger=False``, what 0.1.0 did); deferrable ended in the triggerer (the default
  now); started in the triggerer (``start_from_trigger=True``). Counted as in
  ``live_airflow.slot_seconds``: each run on a worker, first to last line of its task log.
* reaction (video ready -> downstream task start) of deferrable operators, resumed vs ended in
  the triggerer, ``RUNS`` runs per arm. The bound is the poll interval in force when the video
  becomes ready (the operator's default policy).

``python -m benchmarks.trigger_end [--runs N]`` prints the markdown section for RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Goal, Result, SimulatorProcess, fmt, median, percentile, table
from benchmarks.live_airflow import _finish, _runs_from_log, _trigger, _ts

DAGS = Path(__file__).resolve().parent / "dags"
SLOT_ARMS = ("poke", "resume", "end", "start")
REACTION_ARMS = ("resume", "end")
VIDEOS, DURATION, POKE, REACT_MIN, REACT_MAX = 4, 20.0, 2.0, 8.0, 20.0
#: quick mode (tests/integration/test_benchmarks_quick.py): long enough that every sensor defers
QUICK = {"VIDEOS": 2, "DURATION": 12.0, "REACT_MIN": 4.0, "REACT_MAX": 8.0}


def run(runs: int = 5, quick: bool = False) -> Result:
    """The slot arms once each, then ``runs`` reaction runs per arm (one with ``quick``)."""
    global VIDEOS, DURATION, REACT_MIN, REACT_MAX
    if quick:
        runs = 1
        VIDEOS, DURATION = int(QUICK["VIDEOS"]), QUICK["DURATION"]
        REACT_MIN, REACT_MAX = QUICK["REACT_MIN"], QUICK["REACT_MAX"]
    started = time.perf_counter()
    from tests.integration.airflow_run import AirflowComponents, free_port, live_env, migrate

    load = os.getloadavg()
    with SimulatorProcess() as sim, tempfile.TemporaryDirectory(prefix="bench-end-") as tmp:
        home = Path(tmp) / "airflow"
        migrate(home)
        shutil.copy(DAGS / "bench_end.py", home / "dags" / "bench_end.py")
        env = live_env(
            home,
            sim.url,
            api_port=free_port(),
            parallelism=VIDEOS + 2,
            BENCH_VIDEOS=str(VIDEOS),
            BENCH_DURATION=f"{DURATION:g}",
            BENCH_POKE=f"{POKE:g}",
            BENCH_REACT_MIN=f"{REACT_MIN:g}",
            BENCH_REACT_MAX=f"{REACT_MAX:g}",
            AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG=str(2 * VIDEOS + 2),
        )
        with AirflowComponents(home, env) as af:
            af.start("api-server", "dag-processor", "scheduler", "triggerer")
            af.wait_until(
                "the DAGs to be parsed",
                lambda: len(af.query("SELECT dag_id FROM dag WHERE dag_id LIKE 'bench_end_%'")) >= 6,
                240,
            )
            slots = {}
            for arm in SLOT_ARMS:
                dag_id = f"bench_end_slots_{arm}"
                run_id = _trigger(af, [dag_id])[dag_id]
                _finish(af, dag_id, run_id, 900)
                slots[arm] = _slots(af, home, dag_id, run_id)
            reactions: dict[str, list[list[dict[str, Any]]]] = {arm: [] for arm in REACTION_ARMS}
            known: dict[str, set[str]] = {arm: set() for arm in REACTION_ARMS}
            for _ in range(runs):
                for arm in REACTION_ARMS:
                    dag_id = f"bench_end_reaction_{arm}"
                    run_id = _trigger(af, [dag_id], frozenset(known[arm]))[dag_id]
                    known[arm].add(run_id)
                    _finish(af, dag_id, run_id, 900)
                    reactions[arm].append(_reactions(af, sim, dag_id, run_id))
                    reactions[arm][-1].append({"slots": _slots(af, home, dag_id, run_id, "generate_")})
    return result(slots, reactions, load, os.getloadavg(), quick, time.perf_counter() - started)


def _slots(af: Any, home: Path, dag_id: str, run_id: str, prefix: str = "wait_") -> dict[str, Any]:
    """Worker-slot seconds and worker runs of the run's ``prefix*`` task instances."""
    tis = af.query(
        "SELECT task_id, try_number FROM task_instance WHERE dag_id=? AND run_id=? AND task_id LIKE ?",
        dag_id,
        run_id,
        f"{prefix}%",
    )
    total = parsing = 0.0
    worker_runs = 0
    for task_id, tries in tis:
        for attempt in range(1, max(int(tries), 1) + 1):
            for first, parsed, last in _runs_from_log(home, dag_id, run_id, task_id, -1, attempt):
                total += last - first
                parsing += parsed - first
                worker_runs += 1
    return {"tasks": len(tis), "worker_runs": worker_runs, "slot_seconds": total, "parse_seconds": parsing}


def _reactions(af: Any, sim: SimulatorProcess, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    from modelslab_provider.client.policy import PollPolicy

    jobs = sim.admin("/_sim/jobs")
    log = sim.admin("/_sim/requests")
    policy = PollPolicy(min_interval=5.0, max_interval=60.0)  # the operator's defaults
    out = []
    for i in range(VIDEOS):
        value = af.query(
            "SELECT value FROM xcom WHERE dag_id=? AND run_id=? AND task_id=? AND key='request_id'",
            dag_id,
            run_id,
            f"generate_{i}",
        )[0][0]
        request_id = json.loads(value) if isinstance(value, str | bytes) else value
        job = jobs[str(request_id)]
        ready = float(job["ready_at"])
        seen = min(
            (e["ts"] for e in log if e["path"].endswith(f"/fetch/{request_id}") and e["ts"] >= ready),
            default=float("nan"),
        )
        start = _ts(
            af.query(
                "SELECT start_date FROM task_instance WHERE dag_id=? AND run_id=? AND task_id=?",
                dag_id,
                run_id,
                f"downstream_{i}",
            )[0][0]
        )
        assert start is not None
        submitted = float(job["submitted_at"])
        out.append(
            {
                "reaction": start - ready,
                "detection": seen - ready,
                "airflow": start - seen,
                "bound": policy.next_delay(elapsed=ready - submitted, eta=float(job["eta"])),
            }
        )
    return out


def result(
    slots: dict[str, dict[str, Any]],
    reactions: dict[str, list[list[dict[str, Any]]]],
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
    quick: bool,
    seconds: float,
) -> Result:
    """The section of RESULTS.md and the issue-24 goals (timing figures never become test assertions)."""
    poke = slots["poke"]["slot_seconds"]

    def share(arm: str) -> float:
        return slots[arm]["slot_seconds"] / poke if poke else float("nan")

    slot_rows = [
        [
            arm,
            s["tasks"],
            s["worker_runs"],
            fmt(s["slot_seconds"]),
            fmt(s["parse_seconds"]),
            f"{share(arm) * 100:.1f} %",
        ]
        for arm, s in slots.items()
    ]
    per_run: dict[str, list[dict[str, float]]] = {}
    react_rows = []
    for arm, arm_runs in reactions.items():
        for number, items in enumerate(arm_runs, 1):
            values = [r for r in items if "reaction" in r]
            op_slots = next(r["slots"] for r in items if "slots" in r)
            figures = {
                "median": median([r["reaction"] for r in values]),
                "p95": percentile([r["reaction"] for r in values], 95),
                "limit": max(r["bound"] for r in values) + 1.0,
                "airflow_p95": percentile([r["airflow"] for r in values], 95),
                "slot_seconds": op_slots["slot_seconds"],
                "worker_runs": op_slots["worker_runs"],
            }
            per_run.setdefault(arm, []).append(figures)
            react_rows.append(
                [
                    arm,
                    number,
                    fmt(figures["median"]),
                    fmt(figures["p95"]),
                    fmt(figures["limit"]),
                    fmt(figures["airflow_p95"]),
                    figures["worker_runs"],
                    fmt(figures["slot_seconds"]),
                ]
            )
    end_runs = per_run.get("end", [])
    markdown = "\n\n".join(
        [
            f"Load average (1, 5, 15 min) before: {', '.join(f'{x:.1f}' for x in load_before)}; after: "
            f"{', '.join(f'{x:.1f}' for x in load_after)} (2 cores, shared with other work).",
            f"Worker slots: {VIDEOS} sensors per arm, videos of {DURATION:g} s, poke interval {POKE:g} s "
            "(the trigger polls at the same pace). Arms: `poke` (mode poke), `resume` (deferrable, "
            "`end_from_trigger=False`: the 0.1.0 behaviour), `end` (deferrable, ended in the triggerer: "
            "the default now), `start` (`start_from_trigger=True`). Worker-slot seconds = every run on a "
            "worker, first to last line of its task log (as benchmark 4).",
            table(
                ["arm", "sensors", "worker runs", "worker-slot s", "of which DAG parsing (s)", "vs poke"],
                slot_rows,
            ),
            f"Reaction: {VIDEOS} deferrable operators per run, videos of {REACT_MIN:g}-{REACT_MAX:g} s, "
            "default poll policy (bound = the poll interval in force when the video becomes ready); "
            "the arms alternate run by run in one Airflow. Reaction = video ready -> downstream start; "
            "Airflow = the successful fetch -> downstream start.",
            table(
                [
                    "arm",
                    "run",
                    "reaction median (s)",
                    "reaction p95 (s)",
                    "goal: bound + 1 s",
                    "Airflow p95 (s)",
                    "operator worker runs",
                    "operator worker-slot s",
                ],
                react_rows,
            ),
        ]
    )
    goals = [
        Goal(
            "deferrable sensor wait ended in the triggerer: <= 1 % of poke-mode worker-slot seconds",
            f"{slots['end']['slot_seconds']:.1f} s vs {poke:.1f} s ({share('end') * 100:.1f} %; resumed "
            f"on a worker: {share('resume') * 100:.1f} %)",
            share("end") <= 0.01,
        ),
        Goal(
            "sensor started in the triggerer: 0 worker-slot seconds",
            f"{slots['start']['slot_seconds']:.1f} s, {slots['start']['worker_runs']} worker runs",
            slots["start"]["worker_runs"] == 0,
        ),
        Goal(
            f"reaction p95 <= poll bound + 1 s on each of {len(end_runs)} run(s), ended in the triggerer",
            "p95 "
            + ", ".join(f"{r['p95']:.1f}" for r in end_runs)
            + " s (limit "
            + ", ".join(f"{r['limit']:.1f}" for r in end_runs)
            + "; resumed on a worker: "
            + ", ".join(f"{r['p95']:.1f}" for r in per_run.get("resume", []))
            + " s)",
            bool(end_runs) and all(r["p95"] <= r["limit"] for r in end_runs),
        ),
    ]
    return Result(
        name="end",
        title="7. Ending waits in the triggerer (real Airflow, issue 24)",
        rows=[{"slots": slots}, {"reactions": per_run}],
        goals=goals,
        markdown=markdown,
        commands=[f"python -m benchmarks.trigger_end{' --runs 1' if quick else ''}"],
        seconds=seconds,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    outcome = run(args.runs)
    print(outcome.markdown)
    print()
    print(table(["goal", "measured", ""], [g.row() for g in outcome.goals]))
    print(f"\n({outcome.seconds:.0f} s)")


if __name__ == "__main__":
    main()
