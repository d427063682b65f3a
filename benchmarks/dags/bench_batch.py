"""DAGs for the batch benchmark: N videos as one batch task vs N mapped single-video operators.

``BENCH_BATCH_VIDEOS`` videos of ``BENCH_BATCH_DURATION`` s each, on ``wan2.2``; both DAGs defer
and poll at the same pace (``BENCH_BATCH_POLL``). The single-video side uses Text to Video Ultra,
the endpoint whose price a batch entry halves.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from modelslab_provider.operators.batch import ModelsLabVideoBatchOperator
from modelslab_provider.operators.video import ModelsLabTextToVideoOperator

VIDEOS = int(os.environ.get("BENCH_BATCH_VIDEOS", "6"))
DURATION = float(os.environ.get("BENCH_BATCH_DURATION", "6"))
POLL = float(os.environ.get("BENCH_BATCH_POLL", "5"))
START = pendulum.datetime(2026, 1, 1, tz="UTC")
#: one retry on both sides, as in the other live benchmarks (an Airflow scheduler race can fail a
#: resumed mapped task instance under load); retries are counted and reported
ARGS = {"retries": 1, "retry_delay": timedelta(seconds=1)}
PROMPTS = [f"bench video {i} [sim:duration={DURATION:g} eta={DURATION:g}]" for i in range(VIDEOS)]

with DAG(
    "bench_batch_batched", schedule=None, start_date=START, catchup=False, tags=["bench"], default_args=ARGS
):
    ModelsLabVideoBatchOperator(
        task_id="generate",
        model_id="wan2.2",
        prompts=PROMPTS,
        deferrable=True,
        poll_interval=POLL,
        max_poll_interval=POLL,
        timeout=3600,
    )

with DAG(
    "bench_batch_single", schedule=None, start_date=START, catchup=False, tags=["bench"], default_args=ARGS
):
    ModelsLabTextToVideoOperator.partial(
        task_id="generate",
        endpoint="text2video_ultra",
        model_id="wan2.2",
        output_type=None,
        deferrable=True,
        poll_interval=POLL,
        max_poll_interval=POLL,
        timeout=3600,
    ).expand(prompt=PROMPTS)
