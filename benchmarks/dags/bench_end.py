"""DAGs of benchmarks/trigger_end.py: waits that end in the triggerer beside waits resumed on a worker.

``BENCH_VIDEOS`` sensors (task ids ``wait_i``, not mapped: a mapped sensor cannot start in the
triggerer) per worker-slot DAG, one DAG per arm; and ``BENCH_VIDEOS`` chains ``generate_i`` >>
``downstream_i`` per reaction DAG, one per arm, durations spread over
[``BENCH_REACT_MIN``, ``BENCH_REACT_MAX``].
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import DAG, task

from modelslab_provider.operators.video import ModelsLabTextToVideoOperator
from modelslab_provider.sensors.video import VideoFetchSensor

VIDEOS = int(os.environ.get("BENCH_VIDEOS", "3"))
DURATION = float(os.environ.get("BENCH_DURATION", "15"))
POKE = float(os.environ.get("BENCH_POKE", "2"))
REACT_MIN = float(os.environ.get("BENCH_REACT_MIN", "8"))
REACT_MAX = float(os.environ.get("BENCH_REACT_MAX", "20"))
START = pendulum.datetime(2026, 1, 1, tz="UTC")
SLOT_ARMS: dict[str, dict[str, Any]] = {
    "poke": {"mode": "poke", "deferrable": False},
    "resume": {"deferrable": True, "end_from_trigger": False},
    "end": {"deferrable": True},
    "start": {"start_from_trigger": True},
}
REACTION_ARMS: dict[str, dict[str, Any]] = {"resume": {"end_from_trigger": False}, "end": {}}


@task
def submit_videos() -> list[str]:
    """Start every video at once; the sensors then wait for them side by side."""
    from modelslab_provider.hooks.modelslab import ModelsLabHook

    hook = ModelsLabHook()
    return [
        str(hook.submit("text2video", {"prompt": f"slot {i} [sim:duration={DURATION:g}]"}).request_id)
        for i in range(VIDEOS)
    ]


for arm, kwargs in SLOT_ARMS.items():
    with DAG(dag_id=f"bench_end_slots_{arm}", schedule=None, start_date=START, catchup=False):
        ids = submit_videos()
        for i in range(VIDEOS):
            ids >> VideoFetchSensor(
                task_id=f"wait_{i}",
                request_id=f"{{{{ ti.xcom_pull(task_ids='submit_videos', map_indexes=-1)[{i}] }}}}",
                poke_interval=POKE,
                timeout=1800,
                poll_policy={"min_interval": min(POKE, 5.0), "interval": POKE},
                **kwargs,
            )


@task
def downstream(index: int) -> int:
    return index


for arm, kwargs in REACTION_ARMS.items():
    with DAG(dag_id=f"bench_end_reaction_{arm}", schedule=None, start_date=START, catchup=False):
        for i in range(VIDEOS):
            # durations spread evenly over [REACT_MIN, REACT_MAX] (golden-ratio sequence)
            seconds = REACT_MIN + (REACT_MAX - REACT_MIN) * ((i * 0.6180339887) % 1)
            generate = ModelsLabTextToVideoOperator(
                task_id=f"generate_{i}",
                prompt=f"reaction {arm} {i} [sim:duration={seconds:.2f}]",
                deferrable=True,
                **kwargs,
            )
            generate >> downstream.override(task_id=f"downstream_{i}")(i)
