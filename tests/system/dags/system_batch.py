"""System test: one Video Batch of 3 prompts (paid: 3 videos at half the Ultra price). Opt-in only."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from modelslab_provider.operators.batch import ModelsLabVideoBatchOperator

with DAG(
    dag_id="system_modelslab_batch",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["modelslab", "system"],
):
    ModelsLabVideoBatchOperator(
        task_id="generate",
        model_id="wan2.2",
        prompts=[
            "a lighthouse at dusk, waves crashing",
            "a hummingbird at a flower, slow motion",
            "city lights from a night train window",
        ],
        defaults={"resolution": 480},
        deferrable=True,
        timeout=1800,
    )
