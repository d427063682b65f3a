"""Issue 22 in real Airflow runs: the batch operator keeps the promises of "Retries, timeouts and who pays".

- ``batch_deferred_timeout``: a deferred batch that never finishes ends at ``execution_timeout``
  (15 s), not at ``timeout`` (1 h).
- ``batch_retry_after_timeout``: a sync batch whose first try is killed by ``execution_timeout``
  (8 s); the retry reconnects to the same batch (one batch POST in all) and, though the API's ETA
  says a minute, polls once more before its own end and finishes on that try.
- ``videos`` + ``store``: the README's partial-failure pattern, one of three inputs failing; the
  mapped store step copies the two videos and nothing fails.
"""

from __future__ import annotations

import os
import tempfile
from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from modelslab_provider.operators.batch import ModelsLabVideoBatchOperator
from modelslab_provider.operators.storage import ModelsLabStoreVideosOperator

TAG = "{{ dag_run.conf.get('tag', 'untagged') }}"
STORE_DIR = os.environ.get("ENGINE_RUNS_STORE_DIR") or tempfile.gettempdir()

with DAG(
    dag_id="engine_runs",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["test"],
    default_args={"retry_delay": timedelta(0)},
):
    deferred_timeout = ModelsLabVideoBatchOperator(
        task_id="batch_deferred_timeout",
        model_id="wan2.2",
        prompts=[f"never {i} {TAG} [sim:outcome=never eta=1]" for i in range(3)],
        deferrable=True,
        execution_timeout=timedelta(seconds=15),
        poll_interval=2,
        max_poll_interval=2,
        retries=0,
        trigger_rule="all_done",
    )
    retried = ModelsLabVideoBatchOperator(
        task_id="batch_retry_after_timeout",
        model_id="wan2.2",
        prompts=[f"slow {i} {TAG} [sim:duration=14 eta=60]" for i in range(3)],
        execution_timeout=timedelta(seconds=8),
        poll_interval=1,
        max_poll_interval=30,
        retries=2,
        trigger_rule="all_done",
    )
    videos = ModelsLabVideoBatchOperator(
        task_id="videos",
        model_id="wan2.2",
        prompts=[
            f"first {TAG} [sim:duration=1]",
            f"second {TAG} [sim:duration=1 outcome=failed]",
            f"third {TAG} [sim:duration=1]",
        ],
        allow_partial_failure=True,
        deferrable=True,
        poll_interval=0.5,
        max_poll_interval=1,
        retries=0,
    )
    store = ModelsLabStoreVideosOperator.partial(
        task_id="store", destination=f"file://{STORE_DIR}/", retries=0
    ).expand(urls=videos.output)
    # one after the other, the longest last (``dags test`` runs one task at a time anyway)
    store >> retried >> deferred_timeout
