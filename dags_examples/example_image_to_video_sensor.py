"""Image to video: submit without waiting, then wait with a sensor in reschedule mode.

``submit`` returns as soon as ModelsLab accepts the job (``wait_for_completion=False``); its return
value is the request id. ``wait`` is a ``VideoFetchSensor`` in ``reschedule`` mode: each poke is one
fetch, and between pokes the task gives its worker slot back. This split suits long jobs on deployments
without a triggerer, or when other tasks should run between submit and wait. ``store`` keeps the
files.
"""

from __future__ import annotations

import os
import tempfile
from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from modelslab_provider.operators.storage import ModelsLabStoreVideosOperator
from modelslab_provider.operators.video import ModelsLabImageToVideoOperator
from modelslab_provider.sensors.video import VideoFetchSensor

BASE_FOLDER = os.path.abspath(os.environ.get("AIRFLOW_HOME") or tempfile.gettempdir())
VIDEO_FOLDER = os.path.join(BASE_FOLDER, "modelslab-videos")

with DAG(
    dag_id="example_modelslab_image_to_video_sensor",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["modelslab", "example"],
    params={
        # no default: give the URL of a public image when triggering the DAG
        "image_url": Param(type="string", format="uri", description="public URL of the image to animate"),
        "prompt": Param("the cat slowly turns its head and blinks", type="string"),
        "destination": Param(f"file://{VIDEO_FOLDER}/", type="string"),
    },
):
    # [START image_to_video]
    submit = ModelsLabImageToVideoOperator(
        task_id="submit",
        init_image="{{ params.image_url }}",
        prompt="{{ params.prompt }}",
        wait_for_completion=False,  # submit only: its return value is the request id
    )
    # [END image_to_video]

    # [START sensor]
    wait = VideoFetchSensor(
        task_id="wait",
        request_id=submit.output,  # the request id (also sets the dependency)
        api_version="{{ ti.xcom_pull(task_ids='submit', key='api_version') }}",
        mode="reschedule",  # free the worker slot between pokes
        poke_interval=10,  # seconds; each poke starts a new worker process: use 60+ for long jobs
        timeout=timedelta(hours=1),  # fails the sensor (no retry) if the video is not ready by then
    )
    # [END sensor]

    store = ModelsLabStoreVideosOperator(
        task_id="store",
        urls=wait.output,  # the sensor's XCom: the list of output URLs
        destination="{{ params.destination }}",
        request_id=submit.output,
    )
