"""A batch: one video per prompt with dynamic task mapping, stored, then summarised in one task.

``generate`` is mapped over the prompts (one task instance, and one ModelsLab job, per prompt);
every instance defers, so a large batch waits in the triggerer without holding worker slots.
When the account's queue is full, ModelsLab refuses new jobs and each instance waits for a slot
(in the triggerer too) before submitting again. ``store`` is mapped over the generated URL lists,
so ``store[i]`` keeps the videos of ``generate[i]``. ``summarise`` reads the stored files back
through ``ObjectStoragePath``, the same way any downstream media step would.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from typing import Any

import pendulum
from airflow.sdk import DAG, ObjectStoragePath, Param, task

from modelslab_provider.operators.storage import ModelsLabStoreVideosOperator
from modelslab_provider.operators.video import ModelsLabTextToVideoOperator

BASE_FOLDER = os.path.abspath(os.environ.get("AIRFLOW_HOME") or tempfile.gettempdir())
VIDEO_FOLDER = os.path.join(BASE_FOLDER, "modelslab-videos")

with DAG(
    dag_id="example_modelslab_batch_mapped",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["modelslab", "example"],
    params={
        "prompts": Param(
            ["a lighthouse at dusk, waves crashing", "a hummingbird drinking from a flower, slow motion"],
            type="array",
            minItems=1,
        ),
        "destination": Param(f"file://{VIDEO_FOLDER}/batch/", type="string"),
    },
):

    @task
    def prompts(**context: Any) -> list[str]:
        """The prompts to fan out over (a task, so they can come from the run's config)."""
        return list(context["params"]["prompts"])

    # [START mapped]
    generate = ModelsLabTextToVideoOperator.partial(
        task_id="generate",
        deferrable=True,
        poll_interval=5,
        timeout=3600,
    ).expand(prompt=prompts())

    store = ModelsLabStoreVideosOperator.partial(
        task_id="store",
        destination="{{ params.destination }}",
        # the request id of the generate instance with the same map index
        request_id="{{ ti.xcom_pull(task_ids='generate', key='request_id', map_indexes=ti.map_index) }}",
    ).expand(urls=generate.output)
    # [END mapped]

    @task
    def summarise(stored: Iterable[list[str]]) -> dict[str, Any]:
        """One line per batch: how many videos were kept, how many bytes, and where."""
        uris = [uri for batch in stored for uri in batch]
        total = sum(ObjectStoragePath(uri).stat().st_size for uri in uris)
        print(f"kept {len(uris)} video(s), {total} bytes")
        return {"videos": len(uris), "bytes": total, "uris": uris}

    summarise(store.output)
