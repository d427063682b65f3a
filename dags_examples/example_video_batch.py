"""Half-price videos: ModelsLab's Video Batch API for many prompts on one model.

``prompts`` (an upstream task, so the list can come from anywhere) feeds one
``ModelsLabVideoBatchOperator``: it submits 3 to 20 prompts per batch (more are split into
balanced batches), each entry at half the single-video price, and waits for all of them with one
fetch per batch per poll, in the triggerer. Its ``return_value`` holds one list of URLs per prompt,
in prompt order, so ``store`` can be mapped over it: ``store[i]`` keeps the video of prompt ``i``.
``summarise`` reads the stored files back and reports what each entry cost relative to single
submits.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from typing import Any

import pendulum
from airflow.sdk import DAG, ObjectStoragePath, Param, task

from modelslab_provider.operators.batch import ModelsLabVideoBatchOperator
from modelslab_provider.operators.storage import ModelsLabStoreVideosOperator

BASE_FOLDER = os.path.abspath(os.environ.get("AIRFLOW_HOME") or tempfile.gettempdir())
VIDEO_FOLDER = os.path.join(BASE_FOLDER, "modelslab-videos")

with DAG(
    dag_id="example_modelslab_video_batch",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["modelslab", "example"],
    params={
        "prompts": Param(
            [
                "a lighthouse at dusk, waves crashing",
                "a hummingbird drinking from a flower, slow motion",
                "city lights seen from a night train window",
            ],
            type="array",
            minItems=1,
        ),
        "destination": Param(f"file://{VIDEO_FOLDER}/video-batch/", type="string"),
    },
):

    @task
    def prompts(**context: Any) -> list[str]:
        """The prompts (a task, so they can come from the run's config, a table or a file)."""
        return list(context["params"]["prompts"])

    # [START video_batch]
    generate = ModelsLabVideoBatchOperator(
        task_id="generate",
        model_id="wan2.2",
        prompts=prompts(),
        defaults={"resolution": 480, "num_frames": 81},  # under every prompt; a request's own value wins
        deferrable=True,
        poll_interval=5,
        timeout=1800,
    )

    store = ModelsLabStoreVideosOperator.partial(
        task_id="store",
        destination="{{ params.destination }}",
        # the request id of input ``map_index``: file names stay unique across the batch
        request_id=("{{ ti.xcom_pull(task_ids='generate', key='results')[ti.map_index]['request_id'] }}"),
    ).expand(urls=generate.output)
    # [END video_batch]

    @task
    def summarise(stored: Iterable[list[str]], **context: Any) -> dict[str, Any]:
        """How many videos were kept, how many bytes, and what the batch saved."""
        results = context["ti"].xcom_pull(task_ids="generate", key="results")
        uris = [uri for files in stored for uri in files]
        total = sum(ObjectStoragePath(uri).stat().st_size for uri in uris)
        refunded = sum(1 for r in results if r["refunded"])
        print(f"kept {len(uris)} video(s), {total} bytes; each batch entry cost half a single submit")
        return {"videos": len(uris), "bytes": total, "uris": uris, "refunded": refunded}

    summarise(store.output)
