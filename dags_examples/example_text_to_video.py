"""Text to video, waited for in the triggerer, then copied to storage you own.

The shortest useful ModelsLab pipeline: ``generate`` submits the prompt, pushes the request id to
XCom at once, and defers; the triggerer polls ModelsLab (no worker slot is held while the video
renders). ``store`` then copies the output files, whose URLs expire after 24 hours, to the
``destination`` folder (any Airflow ObjectStoragePath URI: ``file://``, ``s3://``, ``gs://``...).

Trigger it with a config to change the prompt or the destination, e.g.
``{"prompt": "a paper boat on a rainy street", "destination": "s3://aws_default@my-bucket/videos/"}``.
``make demo`` runs this DAG against the local simulator.
"""

from __future__ import annotations

import os
import tempfile

import pendulum
from airflow.sdk import DAG, Param

from modelslab_provider.operators.storage import ModelsLabStoreVideosOperator
from modelslab_provider.operators.video import ModelsLabTextToVideoOperator

# a local folder by default: under $AIRFLOW_HOME when it is set, else in the temp folder
BASE_FOLDER = os.path.abspath(os.environ.get("AIRFLOW_HOME") or tempfile.gettempdir())
VIDEO_FOLDER = os.path.join(BASE_FOLDER, "modelslab-videos")

with DAG(
    dag_id="example_modelslab_text_to_video",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["modelslab", "example"],
    params={
        "prompt": Param("a red fox running through fresh snow, cinematic", type="string", minLength=1),
        "destination": Param(f"file://{VIDEO_FOLDER}/", type="string"),
    },
):
    # [START text_to_video]
    generate = ModelsLabTextToVideoOperator(
        task_id="generate",
        prompt="{{ params.prompt }}",
        deferrable=True,  # wait in the triggerer, not in a worker slot
        poll_interval=5,  # polls follow the API's ETA; this is only the shortest pause
        timeout=1800,  # seconds for this try: queue waits plus rendering
    )
    # [END text_to_video]

    # [START store]
    store = ModelsLabStoreVideosOperator(
        task_id="store",
        urls=generate.output,  # the list of output URLs (also sets the dependency)
        destination="{{ params.destination }}",
        # files are named <request_id>_<index>.<ext>, so a retry overwrites instead of duplicating
        # only public hosts are fetched (allow_private_hosts=False); the local simulator's files on
        # 127.0.0.1 are fetched because it is the modelslab_default connection's own Base URL
        request_id="{{ ti.xcom_pull(task_ids='generate', key='request_id') }}",
    )
    # [END store]
