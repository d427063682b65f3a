"""System test: one v6 text-to-video job on the real API (paid: one video), waited for in the triggerer."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from modelslab_provider.operators.video import ModelsLabTextToVideoOperator

with DAG(
    dag_id="system_modelslab_text_to_video",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["modelslab", "system"],
    params={"prompt": Param("a paper boat drifting on a calm pond, soft morning light", type="string")},
):
    # v6 text2video with its documented default model (wan2.2) and nothing that raises the price
    ModelsLabTextToVideoOperator(
        task_id="generate",
        prompt="{{ params.prompt }}",
        deferrable=True,
        timeout=1800,
    )
