"""The hook in your own ``@task``: submit one video, wait for it, then keep the file.

``make_clip`` is plain Python with ``ModelsLabHook``: ``text_to_video`` submits (a paid call, sent
once, under a ``track_id`` that names this try), ``wait_for_video`` polls until the video is done
and holds the worker while it waits. ``store`` copies the URLs it returns. Reach for this when an
operator does not fit, for example to pick the prompt in code or to check the balance first.
"""

from __future__ import annotations

import hashlib
import os
import tempfile

import pendulum
from airflow.sdk import DAG, Param, task

from modelslab_provider.operators.storage import ModelsLabStoreVideosOperator

BASE_FOLDER = os.path.abspath(os.environ.get("AIRFLOW_HOME") or tempfile.gettempdir())
VIDEO_FOLDER = os.path.join(BASE_FOLDER, "modelslab-videos")

with DAG(
    dag_id="example_modelslab_hook_task",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["modelslab", "example"],
    params={
        "prompt": Param("a paper boat drifting down a rainy street", type="string"),
        "destination": Param(f"file://{VIDEO_FOLDER}/", type="string"),
    },
):
    # [START hook_task]
    @task
    def make_clip(params: dict, ti=None) -> list[str]:
        from modelslab_provider.hooks.modelslab import ModelsLabHook

        hook = ModelsLabHook()  # modelslab_conn_id="modelslab_default"
        print("Balance before:", hook.wallet_balance())
        # one track_id per try: look for it in the ModelsLab dashboard if a submit is ambiguous
        run = hashlib.sha256(ti.run_id.encode()).hexdigest()[:12]
        track_id = f"{ti.dag_id}.{ti.task_id}.{run}.t{ti.try_number}"
        request = hook.text_to_video(params["prompt"], track_id=track_id)  # paid, sent once
        video = hook.wait_for_video(request.request_id, timeout=900)  # free polls, ETA-aware
        return list(video.urls)

    clip = make_clip()
    # [END hook_task]

    ModelsLabStoreVideosOperator(
        task_id="store",
        urls=clip,  # the @task's return value: the list of output URLs
        destination="{{ params.destination }}",
    )
