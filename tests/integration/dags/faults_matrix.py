"""The fault matrix as DAGs: one task per (fault, way of waiting) cell, each with its own job.

Built from ``tests/integration/reliability/matrix.py`` (the spec the tests assert against), one
DAG per entry of ``DAG_SPECS``. Sensor cells get their jobs from one ``submit`` task (ids as
ints, as ModelsLab sends them); operator cells submit their own. The cell of the "file 404s,
then appears" row runs first and is followed at once by its store step, so the file is still
missing when the copy starts; every other cell waits for it (``all_done``), in any order.
"""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, BaseOperator, task

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:  # the spec lives in the test package, next to the tests using it
    sys.path.insert(0, str(REPO))

from modelslab_provider.client.policy import PollPolicy  # noqa: E402
from modelslab_provider.operators.batch import ModelsLabVideoBatchOperator  # noqa: E402
from modelslab_provider.operators.storage import ModelsLabStoreVideosOperator  # noqa: E402
from modelslab_provider.operators.video import ModelsLabTextToVideoOperator  # noqa: E402
from modelslab_provider.sensors.video import VideoFetchSensor  # noqa: E402
from tests.integration.reliability.matrix import (  # noqa: E402
    COLUMN,
    DAG_SPECS,
    FAULT,
    DagSpec,
    batch_prompts,
    prompt,
    store_task_id,
    task_id,
)

STORE_DIR = os.environ.get("FAULTS_STORE_DIR") or tempfile.gettempdir()


def poll_policy(pace: float) -> dict[str, Any]:
    wanted = {"min_interval": pace, "interval": pace, "max_interval": max(2.0, 2 * pace)}
    return {k: v for k, v in wanted.items() if k in PollPolicy.__dataclass_fields__}


def build(spec: DagSpec) -> DAG:
    with DAG(
        dag_id=spec.dag_id,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        tags=["test", "faults"],
        default_args={"retries": 1, "retry_delay": timedelta(0)},
    ) as dag:
        sensor_cells = [(f, c) for f, c in spec.cells() if COLUMN[c].kind == "sensor"]
        submit = None
        if sensor_cells:

            @task(task_id="submit")
            def submit_jobs(cells: list[list[str]], dag_id: str) -> dict[str, int]:
                from modelslab_provider.hooks.modelslab import ModelsLabHook

                hook = ModelsLabHook()
                ids = {}
                for fault, column in cells:
                    result = hook.submit("text2video", {"prompt": prompt(dag_id, fault, column)})
                    assert result.request_id is not None
                    ids[task_id(fault, column)] = int(result.request_id)
                return ids

            submit = submit_jobs([list(c) for c in sensor_cells], spec.dag_id)

        first, rest, previous = [], [], None
        for fault, column in spec.cells():
            tid = task_id(fault, column)
            after_first = fault != "file_404" and any(f == "file_404" for f, _ in spec.cells())
            extra: dict[str, Any] = {"trigger_rule": "all_done"} if after_first or spec.chain else {}
            cell: BaseOperator
            if COLUMN[column].kind == "sensor":
                mode = (
                    {"deferrable": True} if COLUMN[column].deferred else {"mode": column, "deferrable": False}
                )
                cell = VideoFetchSensor(
                    task_id=tid,
                    request_id="{{ ti.xcom_pull('submit')['" + tid + "'] }}",
                    poke_interval=spec.pace,
                    timeout=spec.timeout,
                    poll_policy=poll_policy(spec.pace),
                    **mode,
                    **extra,
                )
                assert submit is not None
                submit >> cell
            else:
                row = FAULT[fault]
                kwargs: dict[str, Any] = {
                    "task_id": tid,
                    "deferrable": COLUMN[column].deferred,
                    "poll_interval": spec.pace,
                    "max_poll_interval": max(2.0, 2 * spec.pace),
                    "timeout": spec.timeout,
                    **extra,
                    **row.task_kwargs,
                }
                if "execution_timeout" in kwargs:
                    kwargs["execution_timeout"] = timedelta(seconds=kwargs["execution_timeout"])
                if COLUMN[column].kind == "batch":
                    cell = ModelsLabVideoBatchOperator(
                        model_id="wan2.2",
                        prompts=batch_prompts(spec.dag_id, fault, column),
                        allow_partial_failure=row.partial_store,
                        **kwargs,
                    )
                else:
                    cell = ModelsLabTextToVideoOperator(prompt=prompt(spec.dag_id, fault, column), **kwargs)
                if row.partial_store:  # the docs' pattern: one copy task per successful input
                    ModelsLabStoreVideosOperator.partial(
                        task_id=store_task_id(fault, column),
                        destination=f"file://{STORE_DIR}/{spec.dag_id}/partial/",
                        retries=0,
                    ).expand(urls=cell.output)
            if fault == "file_404":
                store = ModelsLabStoreVideosOperator(
                    task_id=store_task_id(fault, column),
                    urls=cell.output,
                    destination=f"file://{STORE_DIR}/{spec.dag_id}/",
                    request_id=None,
                    download_attempts=12,
                    retry_initial_delay=0.5,
                    retry_max_delay=1.0,
                )
                first.append(store)
            else:
                rest.append(cell)
            if spec.chain and previous is not None:
                previous >> cell
            previous = cell
        for store in first:
            store >> rest
    return dag


for _spec in DAG_SPECS:
    globals()[_spec.dag_id] = build(_spec)
