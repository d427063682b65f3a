"""Deferrable sensors whose trigger is stalled past the deadline (test_sensor_stalled_trigger.py).

The job never finishes; the test stops the triggerer once both sensors are deferred, so only the
scheduler's deferral timeout can end the wait. ``strict`` must fail as a sensor timeout (no retry,
although ``retries=1``), ``soft`` must be skipped: what poke mode does at its timeout.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task

from modelslab_provider.sensors.video import VideoFetchSensor

FAST = {"min_interval": 0.5, "max_interval": 2.0, "interval": 1.0}


class QuickGraceSensor(VideoFetchSensor):
    """The real sensor with a short grace, so the scheduler takes over a few seconds after the deadline."""

    deferral_grace = 3.0


with DAG(
    dag_id="sensor_stalled",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["test"],
):

    @task
    def submit() -> str:
        from modelslab_provider.hooks.modelslab import ModelsLabHook

        result = ModelsLabHook().submit("text2video", {"prompt": "a stalled cat [sim:outcome=never]"})
        assert result.request_id is not None
        return result.request_id

    request_id = submit()
    for task_id, soft_fail in (("strict", False), ("soft", True)):
        sensor = QuickGraceSensor(
            task_id=task_id,
            request_id="{{ ti.xcom_pull('submit') }}",
            deferrable=True,
            timeout=10,
            soft_fail=soft_fail,
            retries=1,
            poll_policy=FAST,
        )
        request_id >> sensor
