"""Text to video on a v7 video-fusion model (Veo 3.1 Fast by default), then copied to your storage.

``api_version="v7"`` sends the prompt to ``/api/v7/video-fusion/text-to-video``, where
``model_id`` picks the model (Veo, Kling, Seedance, Wan 2.5/2.6, Sora-2, Hailuo: the README's model
table) and the model's own fields apply: ``duration`` (sent as a string, as the model pages do),
``aspect_ratio``, ``resolution``, ``generate_audio``. Each typed field is sent only when it is set,
and v6-only fields such as ``output_type`` stay out unless you pass them.

Trigger it with a config to change the model, prompt or destination, e.g.
``{"model_id": "kling-v2-1-master-i2v", "duration": 5, "destination": "s3://aws_default@bucket/v7/"}``.
"""

from __future__ import annotations

import os
import tempfile

import pendulum
from airflow.sdk import DAG, Param

from modelslab_provider.operators.storage import ModelsLabStoreVideosOperator
from modelslab_provider.operators.video import ModelsLabTextToVideoOperator

BASE_FOLDER = os.path.abspath(os.environ.get("AIRFLOW_HOME") or tempfile.gettempdir())
VIDEO_FOLDER = os.path.join(BASE_FOLDER, "modelslab-videos", "v7")

with DAG(
    dag_id="example_modelslab_v7_text_to_video",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["modelslab", "example", "v7"],
    params={
        "prompt": Param(
            "a lighthouse in a storm at night, waves crashing, cinematic", type="string", minLength=1
        ),
        # https://modelslab.com/models/google/Veo-3.1-fast/api: model_id "veo-3.1-fast", 4, 6 or 8 s
        "model_id": Param("veo-3.1-fast", type="string", minLength=1),
        "duration": Param(8, type="integer", minimum=1),
        "destination": Param(f"file://{VIDEO_FOLDER}/", type="string"),
    },
):
    # [START v7_text_to_video]
    generate = ModelsLabTextToVideoOperator(
        task_id="generate",
        api_version="v7",
        model_id="{{ params.model_id }}",
        prompt="{{ params.prompt }}",
        duration="{{ params.duration }}",  # templated; v7 takes it as a string ("8")
        aspect_ratio="16:9",
        generate_audio=True,
        deferrable=True,
        poll_interval=5,
        timeout=1800,
    )
    # [END v7_text_to_video]

    store = ModelsLabStoreVideosOperator(
        task_id="store",
        urls=generate.output,
        destination="{{ params.destination }}",
        request_id="{{ ti.xcom_pull(task_ids='generate', key='request_id') }}",
    )
