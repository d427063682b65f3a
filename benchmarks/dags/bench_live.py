"""DAGs for the live-Airflow benchmarks (worker slots, reaction time); sized by environment variables.

``BENCH_VIDEOS`` videos per run, ``BENCH_DURATION`` s each for the worker-slot DAGs (one per sensor
mode), ``BENCH_POKE`` s between pokes (and the trigger's pace, so every mode polls alike), and
``BENCH_REACT_MIN``/``BENCH_REACT_MAX`` for the spread of durations in the reaction-time DAG.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import DAG, task

from modelslab_provider.operators.video import ModelsLabTextToVideoOperator
from modelslab_provider.sensors.video import VideoFetchSensor

VIDEOS = int(os.environ.get("BENCH_VIDEOS", "3"))
DURATION = float(os.environ.get("BENCH_DURATION", "6"))
POKE = float(os.environ.get("BENCH_POKE", "2"))
REACT_MIN = float(os.environ.get("BENCH_REACT_MIN", "5"))
REACT_MAX = float(os.environ.get("BENCH_REACT_MAX", "10"))
START = pendulum.datetime(2026, 1, 1, tz="UTC")
MODES: dict[str, dict[str, Any]] = {
    "poke": {"mode": "poke", "deferrable": False},
    "reschedule": {"mode": "reschedule", "deferrable": False},
    "deferrable": {"deferrable": True},
}


@task
def submit_videos() -> list[str]:
    """Start every video at once; the sensors then wait for them side by side."""
    from modelslab_provider.hooks.modelslab import ModelsLabHook

    hook = ModelsLabHook()
    ids = []
    for i in range(VIDEOS):
        result = hook.submit("text2video", {"prompt": f"slot {i} [sim:duration={DURATION:g}]"})
        assert result.request_id is not None
        ids.append(result.request_id)
    return ids


for mode_name, mode_kwargs in MODES.items():
    with DAG(dag_id=f"bench_slots_{mode_name}", schedule=None, start_date=START, catchup=False):
        VideoFetchSensor.partial(
            task_id="wait",
            poke_interval=POKE,
            timeout=1800,
            poll_policy={"min_interval": min(POKE, 5.0), "interval": POKE},
            # on a loaded 2-core machine, Airflow 3.3's scheduler now and then fails a mapped
            # reschedule-mode TI whose executor event arrives after its next reschedule (no error
            # in the task log); one retry keeps the run, and the slot count, intact
            retries=1,
            retry_delay=1,
            **mode_kwargs,
        ).expand(request_id=submit_videos())


@task
def downstream(index: int) -> int:
    return index


with DAG(dag_id="bench_reaction", schedule=None, start_date=START, catchup=False):
    for i in range(VIDEOS):
        # durations spread evenly over [REACT_MIN, REACT_MAX] (golden-ratio sequence)
        seconds = REACT_MIN + (REACT_MAX - REACT_MIN) * ((i * 0.6180339887) % 1)
        generate = ModelsLabTextToVideoOperator(
            task_id=f"generate_{i}", prompt=f"reaction {i} [sim:duration={seconds:.2f}]", deferrable=True
        )
        generate >> downstream.override(task_id=f"downstream_{i}")(i)
