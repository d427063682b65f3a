"""Several reference images, one video: a v7 multi-image model fed by an upstream task's list.

``pick_images`` stands for whatever chooses the images (a catalogue query, an upload step); its
list of URLs goes straight into ``init_image``, which v7 image-to-video models that take several
images accept as a list (e.g. Kling V1.6 multi-image, up to four:
https://modelslab.com/models/klingai/Kling%20V1.6%20Multi%20Image%20To%20Video/api).
``duration`` and ``aspect_ratio`` are the model page's enums (5 or 10 s; 16:9, 9:16 or 1:1).
"""

from __future__ import annotations

import os
import tempfile

import pendulum
from airflow.sdk import DAG, Param, task

from modelslab_provider.operators.storage import ModelsLabStoreVideosOperator
from modelslab_provider.operators.video import ModelsLabImageToVideoOperator

BASE_FOLDER = os.path.abspath(os.environ.get("AIRFLOW_HOME") or tempfile.gettempdir())
VIDEO_FOLDER = os.path.join(BASE_FOLDER, "modelslab-videos", "multi-image")

with DAG(
    dag_id="example_modelslab_v7_image_list",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["modelslab", "example", "v7"],
    params={
        "images": Param(
            [
                "https://assets.modelslab.com/generations/af75fd35-26ee-41cd-a51b-6ea0834b307e.jpg",
                "https://assets.modelslab.com/generations/057b4883-672d-480e-a1e3-19340abdcb2c.jpg",
            ],
            type="array",
            minItems=1,
            maxItems=4,
        ),
        "prompt": Param(
            "a model strolling on a walkway with the bag and the dress, cinematic", type="string"
        ),
        "destination": Param(f"file://{VIDEO_FOLDER}/", type="string"),
    },
):

    @task
    def pick_images(params: dict | None = None) -> list[str]:
        """The reference images for this run (here: the run's ``images`` parameter)."""
        assert params is not None
        return [str(url) for url in params["images"]]

    # [START v7_image_list]
    generate = ModelsLabImageToVideoOperator(
        task_id="generate",
        api_version="v7",
        model_id="kling-v1-6",
        init_image=pick_images(),  # a list of URLs from the upstream task (also the dependency)
        prompt="{{ params.prompt }}",
        duration=5,
        aspect_ratio="16:9",
        deferrable=True,
        poll_interval=5,
        timeout=1800,
    )
    # [END v7_image_list]

    store = ModelsLabStoreVideosOperator(
        task_id="store",
        urls=generate.output,
        destination="{{ params.destination }}",
        request_id="{{ ti.xcom_pull(task_ids='generate', key='request_id') }}",
    )
