"""The batch rows of the fault matrix as DAGs: one ModelsLabVideoBatchOperator task per cell.

Built from ``BATCH_FAULTS`` in ``tests/integration/reliability/matrix.py``; every cell submits its
own three-entry batch, whose prompts name the cell and carry each entry's scenario.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from modelslab_provider.operators.batch import ModelsLabVideoBatchOperator  # noqa: E402
from tests.integration.reliability.matrix import (  # noqa: E402
    BATCH_FAULT,
    DAGS_TEST,
    TRIGGERER_RESTART,
    batch_cells,
    batch_prompts,
    task_id,
)

DAGS = {"faults_batch": DAGS_TEST, "faults_batch_triggerer_restart": TRIGGERER_RESTART}


def build(dag_id: str, runner: str) -> DAG:
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        tags=["test", "faults"],
        default_args={"retries": 1, "retry_delay": timedelta(0)},
    ) as dag:
        for fault, column in batch_cells():
            spec = BATCH_FAULT[fault]
            if spec.runner != runner:
                continue
            ModelsLabVideoBatchOperator(
                task_id=task_id(fault, column),
                model_id="wan2.2",
                prompts=batch_prompts(dag_id, fault, column),
                deferrable=column == "batch_deferred",
                poll_interval=0.5,
                max_poll_interval=2.0,
                timeout=900 if runner == TRIGGERER_RESTART else 120,
                allow_partial_failure=spec.allow_partial_failure,
                trigger_rule="all_done",
            )
    return dag


for _dag_id, _runner in DAGS.items():
    globals()[_dag_id] = build(_dag_id, _runner)
