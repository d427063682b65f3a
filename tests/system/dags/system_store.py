"""System test: copy real ModelsLab output URLs to a local folder (free: downloads from the CDN)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from modelslab_provider.operators.storage import ModelsLabStoreVideosOperator

with DAG(
    dag_id="system_modelslab_store",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["modelslab", "system"],
    params={
        "urls": Param(type="array", minItems=1),
        "request_id": Param(type=["string", "integer"]),
        "destination": Param(type="string"),
    },
    render_template_as_native_obj=True,  # urls stays a list
):
    ModelsLabStoreVideosOperator(
        task_id="store",
        urls="{{ params.urls }}",
        destination="{{ params.destination }}",
        request_id="{{ params.request_id }}",
    )
