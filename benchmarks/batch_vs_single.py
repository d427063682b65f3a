"""Benchmark 6: N videos through the Video Batch API vs N mapped single-video operators.

``python benchmarks/batch_vs_single.py [--quick]`` runs it alone and rewrites its own section of
``benchmarks/RESULTS.md``; ``python benchmarks/run.py`` (``make bench``) includes it too.

One real Airflow (SQLite, LocalExecutor, api-server, dag-processor, scheduler, triggerer) and the
simulator as a separate process, as in ``live_airflow.py``. Both DAGs (``dags/bench_batch.py``)
defer and poll at the same pace; the runs go one after the other. Measured per side, from the
simulator's counters and the task logs:

* paid submits (batch submits vs single submits);
* fetches per video (batch fetches vs single fetches, over N);
* worker-slot seconds: every worker run of every task instance, first to last log line
  (``live_airflow._runs_from_log``), summed;
* relative price: ModelsLab bills a batch entry at half the matching single endpoint
  (https://docs.modelslab.com/video-api/video-batch), so the price is N x 0.5 vs N x 1 units.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REPO, Goal, Result, SimulatorProcess, fmt, table

DAGS = Path(__file__).resolve().parent / "dags"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
TITLE = "6. Video batches vs single-video operators (real Airflow)"
FULL = {"videos": 60, "duration": 30.0, "poll": 5.0}
QUICK = {"videos": 6, "duration": 15.0, "poll": 3.0}
SIDES = ("bench_batch_batched", "bench_batch_single")


def run(quick: bool = False) -> Result:
    from benchmarks.live_airflow import _finish, _runs_from_log, _trigger
    from modelslab_provider.client.batch import BATCH_PRICE_FACTOR
    from tests.integration.airflow_run import AirflowComponents, free_port, live_env, migrate

    size = QUICK if quick else FULL
    videos = int(size["videos"])
    started = time.perf_counter()
    rows: dict[str, dict[str, Any]] = {}
    keep = os.environ.get("BENCH_KEEP_HOME")  # debugging: keep the AIRFLOW_HOME for inspection
    with SimulatorProcess() as sim, tempfile.TemporaryDirectory(prefix="bench-batch-") as scratch:
        home = Path(keep or scratch) / "airflow"
        migrate(home)
        shutil.copy(DAGS / "bench_batch.py", home / "dags" / "bench_batch.py")
        env = live_env(
            home,
            sim.url,
            api_port=free_port(),
            parallelism=videos + 2,
            BENCH_BATCH_VIDEOS=str(videos),
            BENCH_BATCH_DURATION=f"{size['duration']:g}",
            BENCH_BATCH_POLL=f"{size['poll']:g}",
            AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG=str(videos + 2),
            AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
        )
        with AirflowComponents(home, env) as af:
            af.start("api-server", "dag-processor", "scheduler", "triggerer")
            af.wait_until(
                "the batch benchmark DAGs to be parsed",
                lambda: len(af.query("SELECT dag_id FROM dag WHERE dag_id LIKE 'bench_batch_%'")) >= 2,
                180,
            )
            for dag_id in SIDES:
                before = sim.admin("/_sim/stats")
                begun = time.perf_counter()
                run_id = _trigger(af, [dag_id])[dag_id]
                _finish(af, dag_id, run_id, 1800 + size["duration"] * 4)
                wall = time.perf_counter() - begun
                after = sim.admin("/_sim/stats")
                tis = af.query(
                    "SELECT map_index, try_number FROM task_instance "
                    "WHERE dag_id=? AND run_id=? AND task_id='generate'",
                    dag_id,
                    run_id,
                )
                segments = [
                    seg
                    for map_index, tries in tis
                    for attempt in range(1, max(int(tries), 1) + 1)
                    for seg in _runs_from_log(home, dag_id, run_id, "generate", map_index, attempt)
                ]
                batched = dag_id == "bench_batch_batched"
                submits = (
                    after["batch_submits"] - before["batch_submits"]
                    if batched
                    else (after["submits"] - before["submits"])
                )
                fetches = (
                    after["batch_fetches"] - before["batch_fetches"]
                    if batched
                    else (after["fetches"] - before["fetches"])
                )
                rows[dag_id] = {
                    "side": f"1 batch task ({-(-videos // 20)} batches)"
                    if batched
                    else f"{videos} mapped operators",
                    "task_instances": len(tis),
                    "retries": sum(max(int(tries), 1) - 1 for _, tries in tis),
                    "paid_submits": submits,
                    "fetches": fetches,
                    "fetches_per_video": fetches / videos,
                    "worker_runs": len(segments),
                    "slot_seconds": sum(last - first for first, _, last in segments),
                    # of which each run spent starting up until the DAG file was parsed
                    "startup_seconds": sum(parsed - first for first, parsed, _ in segments),
                    "price_units": videos * (BATCH_PRICE_FACTOR if batched else 1.0),
                    "wall_seconds": wall,
                }
    batch, single = rows["bench_batch_batched"], rows["bench_batch_single"]
    header = ["", *(rows[s]["side"] for s in SIDES), "batch / single"]

    def line(label: str, key: str, digits: int = 1) -> list[str]:
        ratio = batch[key] / single[key] if single[key] else float("nan")
        return [label, fmt(batch[key], digits), fmt(single[key], digits), fmt(ratio, 2)]

    markdown = "\n".join(
        [
            f"{videos} videos of {size['duration']:g} s on `wan2.2`, both sides deferrable, polling every "
            f"{size['poll']:g} s; one DAG run after the other in one live Airflow 3 (LocalExecutor) against "
            "the simulator. Price units: one single Text to Video Ultra video = 1 (a batch entry is billed "
            "at half, per ModelsLab's Video Batch page).",
            "",
            table(
                header,
                [
                    line("paid submits", "paid_submits", 0),
                    line("fetches", "fetches", 0),
                    line("fetches per video", "fetches_per_video", 2),
                    line("task instances", "task_instances", 0),
                    line("task retries", "retries", 0),
                    line("worker runs", "worker_runs", 0),
                    line("worker-slot seconds", "slot_seconds", 1),
                    line("  of which start-up until the DAG was parsed", "startup_seconds", 1),
                    line("relative price (units)", "price_units", 1),
                    line("wall time, trigger to finish (s)", "wall_seconds", 0),
                ],
            ),
            "",
            "Worker-slot seconds are summed over every worker run of every `generate` task instance (the "
            "submit run and the resumption after the deferral), first to last line of its log. The batch "
            "side polls one `batch/fetch` per batch per round, so its fetches do not grow with the number "
            "of videos in a batch.",
        ]
    )
    batches = -(-videos // 20)
    goals = [
        Goal(
            f"{videos} videos, one paid submit per batch ({batches})",
            f"{batch['paid_submits']} batch submits vs {single['paid_submits']} single submits",
            batch["paid_submits"] == batches,
        ),
        Goal(
            "fewer fetches per video than single-video operators",
            f"{batch['fetches_per_video']:.2f} vs {single['fetches_per_video']:.2f}",
            batch["fetches_per_video"] < single["fetches_per_video"],
        ),
        Goal(
            "fewer worker-slot seconds than single-video operators",
            f"{batch['slot_seconds']:.1f} s vs {single['slot_seconds']:.1f} s",
            batch["slot_seconds"] < single["slot_seconds"],
        ),
    ]
    return Result(
        name="batch",
        goals=goals,
        title=TITLE,
        rows=[batch, single],
        markdown=markdown,
        commands=["python benchmarks/batch_vs_single.py" + (" --quick" if quick else "")],
        seconds=time.perf_counter() - started,
    )


def write_section(result: Result, path: Path = RESULTS) -> None:
    """Replace (or append) this benchmark's section of RESULTS.md, leaving the others as they are."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    section = f"## {result.title}\n\n{result.markdown}\n\nCommands:\n\n```\n" + "\n".join(result.commands)
    section += f"\n```\n\nRun time: {result.seconds:.0f} s.\n"
    pattern = re.compile(rf"^## {re.escape(result.title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text).rstrip("\n") + "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main(argv: list[str] | None = None) -> Result:
    args = sys.argv[1:] if argv is None else argv
    quick = "--quick" in args
    result = run(quick=quick)
    print(result.markdown)
    if not quick or os.environ.get("BENCH_WRITE_QUICK"):
        write_section(result)
        print(f"wrote {RESULTS.relative_to(REPO)}")
    return result


if __name__ == "__main__":
    main()
