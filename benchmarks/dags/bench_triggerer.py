"""DAG for the real-triggerer CPU benchmark (``benchmarks/celery_airflow.py --triggerer-only``).

``BENCH_HELD_N`` mapped deferrable operators whose jobs stay running (``duration=3600``) until the
benchmark completes them; they poll every ``BENCH_HELD_POLL`` to ``BENCH_HELD_MAX_POLL`` seconds.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG

from modelslab_provider.operators.video import ModelsLabTextToVideoOperator

HELD_N = int(os.environ.get("BENCH_HELD_N", "10"))
POLL = float(os.environ.get("BENCH_HELD_POLL", "5"))
MAX_POLL = float(os.environ.get("BENCH_HELD_MAX_POLL", "10"))

with DAG(dag_id="bench_triggerer_held", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
    ModelsLabTextToVideoOperator.partial(
        task_id="generate", deferrable=True, poll_interval=POLL, max_poll_interval=MAX_POLL
    ).expand(prompt=[f"held op {i} [sim:duration=3600 eta=5]" for i in range(HELD_N)])
