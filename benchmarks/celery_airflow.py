"""Benchmarks 4 and 5 again, on the production-shaped deployment, plus CPU per poll in a real triggerer.

``python benchmarks/celery_airflow.py`` (as root; about 15 minutes on 2 cores) starts the
deployment of the distributed tests (``tests/distributed/deployment.py``: PostgreSQL, Redis,
CeleryExecutor with two workers, two triggerers), runs the LocalExecutor benchmark's DAGs
(``benchmarks/dags/bench_live.py``) one after another and measures them with the same code
(``benchmarks.live_airflow.slot_seconds`` and ``reaction_times``), then holds N deferred
operators (``dist_failover`` of the distributed tests) in the two real ``airflow triggerer``
processes and reads their CPU time (supervisor and trigger-runner child, from /proc) against
the polls the simulator counted in the same window.

The figures go into ``benchmarks/RESULTS.md`` as the section between the
``<!-- celery-deployment -->`` markers, beside the LocalExecutor figures of the same file;
``benchmarks/run.py`` keeps that section when it rewrites the file.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REPO, fmt, machine, median, percentile, table

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
START_MARK = "<!-- celery-deployment:start -->"
END_MARK = "<!-- celery-deployment:end -->"
MODES = ("poke", "reschedule", "deferrable")
SCALE_GOAL = "N = 100: >= 3x less CPU per poll than HttpAsyncHook loop (hand-written trigger)"


class _SimAdmin:
    """``benchmarks.live_airflow.reaction_times`` reads the simulator through ``admin(path)``."""

    def __init__(self, sim: Any) -> None:
        self.sim = sim

    def admin(self, path: str) -> Any:
        return self.sim.get(path)


def triggerer_cpu(dep: Any) -> float:
    """CPU seconds of every triggerer process so far (each supervisor and its trigger-runner child)."""
    from tests.distributed.deployment import _descendants, cpu_seconds

    total = 0.0
    for name, comp in dep.components.items():
        if name.startswith("triggerer") and comp.alive():
            for pid in [comp.pid, *_descendants(comp.pid)]:
                with contextlib.suppress(OSError):
                    total += cpu_seconds(pid)
    return total


def measure(quick: bool = False, held: int = 100, window: float = 60.0) -> dict[str, Any]:
    from benchmarks.live_airflow import FULL, QUICK, reaction_times, slot_seconds
    from tests.distributed.deployment import Deployment

    size = QUICK if quick else FULL
    dags = [REPO / "benchmarks" / "dags" / "bench_live.py", REPO / "tests/distributed/dags/dist_scenarios.py"]
    slots_per_worker = (size.videos + 3) // 2 + 1  # every poke-mode sensor gets a slot, as with LocalExecutor
    root = Path(tempfile.mkdtemp(prefix="modelslab-bench-celery-"))
    begun = time.monotonic()
    out: dict[str, Any] = {"size": size, "machine": machine(), "held": held}
    dep = Deployment.start_all(
        root,
        dags=dags,
        worker_concurrency=slots_per_worker,
        parallelism=2 * slots_per_worker + 4,
        extra_env={
            "BENCH_VIDEOS": str(size.videos),
            "BENCH_DURATION": f"{size.duration:g}",
            "BENCH_POKE": f"{size.poke:g}",
            "BENCH_REACT_MIN": f"{size.react_min:g}",
            "BENCH_REACT_MAX": f"{size.react_max:g}",
            "DIST_FAILOVER_N": str(held),
            "DIST_SPREAD_N": "1",
            "DIST_DB_N": "1",
        },
    )
    try:
        out["describe"] = dep.describe()
        dep.wait_for_dags([f"bench_slots_{m}" for m in MODES] + ["bench_reaction", "dist_failover"])
        out["setup"] = time.monotonic() - begun
        limit = 900 + max(size.duration, size.react_max) * 4
        runs: dict[str, str] = {}
        for dag_id in [*(f"bench_slots_{m}" for m in MODES), "bench_reaction"]:
            runs.update(dep.trigger_dags([dag_id]))
            state = dep.wait_for_run(dag_id, runs[dag_id], limit)
            if state != "success":
                raise RuntimeError(f"{dag_id} ended {state}\n{dep.logs_tail()}")
        out["slots"] = {
            m: slot_seconds(dep, dep.home, f"bench_slots_{m}", runs[f"bench_slots_{m}"], m) for m in MODES
        }
        out["reaction"] = reaction_times(dep, _SimAdmin(dep.sim), runs["bench_reaction"], size)
        out["triggerer"] = _triggerer_cpu_per_poll(dep, held, 15.0 if quick else window)
    finally:
        dep.stop()
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    out["seconds"] = time.monotonic() - begun
    return out


def _triggerer_cpu_per_poll(dep: Any, held: int, window: float) -> dict[str, Any]:
    """Hold ``held`` deferred operators in the two triggerers; their CPU per poll over ``window`` s.

    The triggerers' idle CPU (heartbeats, trigger-table queries) over a window of the same length
    with no trigger is measured first and reported apart, so the per-poll figure is also given
    net of it.
    """
    idle0 = triggerer_cpu(dep)
    time.sleep(window)
    idle = triggerer_cpu(dep) - idle0
    run_id = dep.trigger_dags(["dist_failover"])["dist_failover"]

    def waiting() -> bool:
        rows = dep.query(
            "SELECT count(*) FROM task_instance ti JOIN trigger t ON ti.trigger_id = t.id "
            "WHERE ti.dag_id='dist_failover' AND ti.run_id=%s AND t.triggerer_id IS NOT NULL",
            run_id,
        )
        return bool(rows[0][0] == held)

    dep.wait_until(f"{held} operators deferred", waiting, 1800, 1.0)
    time.sleep(10)  # past the start-up burst: the first polls, the resumed supervisors' lookups
    cpu0, fetch0, t0 = triggerer_cpu(dep), dep.sim.stats()["fetches"], time.monotonic()
    time.sleep(window)
    cpu1, fetch1, t1 = triggerer_cpu(dep), dep.sim.stats()["fetches"], time.monotonic()
    for prompt, ids in dep.submits().items():
        if prompt.startswith("failover op"):
            for job_id in ids:
                dep.sim.complete(job_id)
    dep.wait_for_run("dist_failover", run_id, 1800)
    polls = fetch1 - fetch0
    return {
        "held": held,
        "window": t1 - t0,
        "polls": polls,
        "cpu": cpu1 - cpu0,
        "cpu_ms_per_poll": (cpu1 - cpu0) / polls * 1000 if polls else float("nan"),
        "idle_cpu": idle,
        "net_ms_per_poll": (
            (cpu1 - cpu0 - idle * (t1 - t0) / window) / polls * 1000 if polls else float("nan")
        ),
    }


def _local_figures() -> dict[str, str]:
    """The LocalExecutor goal rows of RESULTS.md (benchmarks 4 and 5), to quote beside ours."""
    found = {}
    text = RESULTS.read_text() if RESULTS.exists() else ""
    for key, title in (
        ("slots", "4. Worker slots"),
        ("reaction", "5. Reaction time"),
        ("scale", "1. Triggerer scale"),
    ):
        for line in text.splitlines():
            cells = [c.strip() for c in line.strip("|").split("|")]
            wanted = key != "scale" or cells[1:2] == [SCALE_GOAL]
            if len(cells) >= 3 and cells[0].startswith(title) and wanted:
                found[key] = cells[2]
                break
    return found


def render(out: dict[str, Any], command: str) -> str:
    size = out["size"]
    slots = out["slots"]
    poke = slots["poke"]["slot_seconds"]
    react = [r["reaction"] for r in out["reaction"]]
    detect = [r["detection"] for r in out["reaction"]]
    overhead = [r["airflow"] for r in out["reaction"]]
    trig = out["triggerer"]
    local = _local_figures()
    rows = [
        [
            m,
            slots[m]["task_instances"],
            slots[m]["retries"],
            slots[m]["worker_runs"],
            fmt(slots[m]["slot_seconds"]),
            f"{slots[m]['slot_seconds'] / poke * 100:.1f} %" if poke else "n/a",
        ]
        for m in MODES
    ]
    lines = [
        START_MARK,
        "## Celery deployment: PostgreSQL, CeleryExecutor on Redis, two triggerers (issue 14)",
        "",
        f"Written by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in "
        f"{out['seconds'] / 60:.1f} minutes (Airflow start-up {out['setup']:.0f} s); load average at "
        f"start {out['machine']['load average at start']}. The deployment is the distributed tests' "
        "(`tests/distributed/deployment.py`):",
        "",
        "```",
        out["describe"],
        "```",
        "",
        f"### Worker slots ({size.videos} videos of {size.duration:g} s, poke interval {size.poke:g} s)",
        "",
        "Same DAGs and same counting as benchmark 4 (each try's own log, first to last line per worker "
        "run), with the tasks on two Celery workers.",
        "",
        table(["mode", "task instances", "retries", "worker runs", "worker-slot s", "vs poke"], rows),
        "",
        f"LocalExecutor (benchmark 4 above): {local.get('slots', 'n/a')}. A deferrable worker run took "
        f"{slots['deferrable']['slot_seconds'] / max(slots['deferrable']['worker_runs'], 1):.1f} s here "
        "(first to last log line), several times the LocalExecutor's on the same machine; that run is "
        "mostly Airflow's own start-up of the task (DAG parse, execution-API calls through one API "
        "server process), which suffers most from the machine's load. The cause was not isolated "
        "further.",
        "",
        f"### Reaction time ({size.videos} deferrable operators, {size.react_min:g}-{size.react_max:g} s)",
        "",
        table(
            ["figure", "median (s)", "p95 (s)"],
            [
                ["reaction (ready -> downstream start)", fmt(median(react)), fmt(percentile(react, 95))],
                ["  detection (ready -> successful fetch)", fmt(median(detect)), fmt(percentile(detect, 95))],
                [
                    "  Airflow (that fetch -> downstream start)",
                    fmt(median(overhead)),
                    fmt(percentile(overhead, 95)),
                ],
            ],
        ),
        "",
        f"LocalExecutor (benchmark 5 above): {local.get('reaction', 'n/a')}.",
        "",
        f"### CPU per poll inside the real `airflow triggerer` processes (N = {trig['held']})",
        "",
        f"{trig['held']} deferred `ModelsLabTextToVideoOperator`s (poll every 2-3 s) held in the two "
        f"triggerers; over {trig['window']:.0f} s the triggerer processes (supervisor + trigger-runner "
        f"child, both triggerers) used {trig['cpu']:.2f} CPU s for {trig['polls']:,} polls counted by the "
        f"simulator: **{trig['cpu_ms_per_poll']:.2f} CPU ms per poll**, heartbeats, connection lookups "
        "through the supervisor and log shipping included. With no trigger at all the two triggerers "
        f"used {trig['idle_cpu']:.2f} CPU s over a window of the same length (heartbeats, trigger-table "
        f"queries); net of that, **{trig['net_ms_per_poll']:.2f} CPU ms per poll**. Bare event loop, "
        f"N = 100 (benchmark 1 above): {local.get('scale', 'n/a')}. The machine's load (see above) "
        "inflates wall-clock figures here (worker-slot seconds, reaction) much more than CPU times.",
        "",
        END_MARK,
    ]
    return "\n".join(lines)


def write_section(section: str, path: Path = RESULTS) -> None:
    """Put ``section`` into RESULTS.md in place of the previous one (or at the end)."""
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(START_MARK) + ".*?" + re.escape(END_MARK), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the benchmark runs")
    parser.add_argument(
        "--held", type=int, default=100, help="deferred operators for the CPU-per-poll figure"
    )
    args = parser.parse_args(argv)
    out = measure(quick=args.quick, held=args.held)
    command = "python benchmarks/celery_airflow.py" + (" --quick" if args.quick else "")
    if args.held != 100:
        command += f" --held {args.held}"
    section = render(out, command)
    print(section)
    if not args.quick:
        write_section(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
