"""Wait for a ModelsLab request that was submitted outside Airflow, then keep its video.

A web app, a script or a teammate started the job; this DAG only needs its request id. Trigger
it with ``{"request_id": "155262350"}`` (add ``"api_version": "v7"`` for video-fusion requests).
The sensor is deferrable: it pokes once, then waits in the triggerer. Fetching a request is free;
nothing here submits (or pays for) a new job.
"""

from __future__ import annotations

import os
import tempfile

import pendulum
from airflow.sdk import DAG, Param

from modelslab_provider.operators.storage import ModelsLabStoreVideosOperator
from modelslab_provider.sensors.video import VideoFetchSensor

BASE_FOLDER = os.path.abspath(os.environ.get("AIRFLOW_HOME") or tempfile.gettempdir())
VIDEO_FOLDER = os.path.join(BASE_FOLDER, "modelslab-videos")

with DAG(
    dag_id="example_modelslab_sensor_external_request",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["modelslab", "example"],
    params={
        # no default: the id must be given when the DAG is triggered
        "request_id": Param(type=["string", "integer"], description="the ModelsLab request id"),
        "api_version": Param("v6", enum=["v6", "v7"], description="v7 for video-fusion requests"),
        "destination": Param(f"file://{VIDEO_FOLDER}/external/", type="string"),
    },
):
    # [START sensor_external]
    wait = VideoFetchSensor(
        task_id="wait",
        request_id="{{ params.request_id }}",
        api_version="{{ params.api_version }}",
        deferrable=True,
        timeout=6 * 3600,  # seconds; then the sensor fails without retry
    )
    # [END sensor_external]

    ModelsLabStoreVideosOperator(
        task_id="store",
        urls=wait.output,
        destination="{{ params.destination }}",
        request_id="{{ params.request_id }}",
    )
