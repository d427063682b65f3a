"""System test: a deferrable VideoFetchSensor on a request id (free: fetches only, never a submit)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from modelslab_provider.sensors.video import VideoFetchSensor

with DAG(
    dag_id="system_modelslab_sensor",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["modelslab", "system"],
    params={"request_id": Param(type=["string", "integer"])},
):
    VideoFetchSensor(
        task_id="wait",
        request_id="{{ params.request_id }}",
        deferrable=True,
        poke_interval=10,
        timeout=1800,
    )
