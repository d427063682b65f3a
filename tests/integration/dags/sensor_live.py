"""The deferrable VideoFetchSensor under a real scheduler, triggerer and LocalExecutor.

``wait`` outranks ``meanwhile``; with a single worker slot (``[core] parallelism = 1``)
``meanwhile`` can only run while ``wait`` is deferred, so its start time proves no slot was held.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, get_current_context, task

from modelslab_provider.sensors.video import VideoFetchSensor

FAST = {"min_interval": 0.5, "max_interval": 2.0, "interval": 1.0}

with DAG(
    dag_id="sensor_live",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["test"],
):

    @task(priority_weight=1, weight_rule="absolute")
    def submit() -> str:
        from modelslab_provider.hooks.modelslab import ModelsLabHook

        scenario = get_current_context()["dag_run"].conf.get("scenario", "duration=20")
        result = ModelsLabHook().submit("text2video", {"prompt": f"a live cat [sim:{scenario}]"})
        assert result.request_id is not None
        return result.request_id

    @task(priority_weight=1, weight_rule="absolute")
    def meanwhile() -> str:
        return "ran while the sensor was deferred"

    wait = VideoFetchSensor(
        task_id="wait",
        request_id="{{ ti.xcom_pull('submit') }}",
        deferrable=True,
        timeout=180,
        poll_policy=FAST,
        priority_weight=100,
        weight_rule="absolute",
    )
    submitted = submit()
    submitted >> [wait, meanwhile()]
