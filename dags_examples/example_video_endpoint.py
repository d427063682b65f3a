"""Any ModelsLab video endpoint by name: Text to Video Ultra through ModelsLabVideoOperator.

``ModelsLabVideoOperator`` sends its ``payload`` unchanged to the endpoint it names, for endpoints
and fields the typed operators do not cover. Here ``text2video_ultra`` (HD, up to 480p) with the
DAG's prompt, then the copy to storage as in the other examples.
"""

from __future__ import annotations

import os
import tempfile

import pendulum
from airflow.sdk import DAG, Param

from modelslab_provider.operators.storage import ModelsLabStoreVideosOperator
from modelslab_provider.operators.video import ModelsLabVideoOperator

BASE_FOLDER = os.path.abspath(os.environ.get("AIRFLOW_HOME") or tempfile.gettempdir())
VIDEO_FOLDER = os.path.join(BASE_FOLDER, "modelslab-videos")

with DAG(
    dag_id="example_modelslab_video_endpoint",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["modelslab", "example"],
    params={
        "prompt": Param("a lighthouse at dusk", type="string", minLength=1),
        "destination": Param(f"file://{VIDEO_FOLDER}/ultra/", type="string"),
    },
):
    # [START video_endpoint]
    ultra = ModelsLabVideoOperator(
        task_id="ultra",
        endpoint="text2video_ultra",
        # sent as is (templated); ModelsLab's field names and ranges vary by endpoint and model
        payload={"prompt": "{{ params.prompt }}", "model_id": "wan2.2", "resolution": 480, "portrait": False},
        deferrable=True,
    )
    # [END video_endpoint]

    ModelsLabStoreVideosOperator(
        task_id="store",
        urls=ultra.output,
        destination="{{ params.destination }}",
        request_id="{{ ti.xcom_pull(task_ids='ultra', key='request_id') }}",
    )
