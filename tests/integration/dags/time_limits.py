"""execution_timeout while deferred (issue 11.7): jobs that never finish, default ``timeout``.

Airflow 3 applies ``execution_timeout`` only around ``execute``; the trigger must end the wait at
the try's start plus ``execution_timeout`` and say so. One deferrable operator and one deferrable
sensor, each with ``execution_timeout=20 s`` and no retries.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from modelslab_provider.operators.video import ModelsLabTextToVideoOperator
from modelslab_provider.sensors.video import VideoFetchSensor

EXECUTION_TIMEOUT = timedelta(seconds=20)
POLL = 2.0
TAG = "{{ dag_run.conf.get('tag', 'untagged') }}"

with DAG(
    dag_id="time_limits",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["test"],
):
    operator = ModelsLabTextToVideoOperator(
        task_id="operator_deferred",
        prompt=f"never ends {TAG} [sim:outcome=never eta=1]",
        deferrable=True,
        execution_timeout=EXECUTION_TIMEOUT,
        poll_interval=POLL,
        max_poll_interval=POLL,
        retries=0,
    )
    submit_only = ModelsLabTextToVideoOperator(
        task_id="submit_only",
        prompt=f"never ends either {TAG} [sim:outcome=never eta=1]",
        wait_for_completion=False,
        retries=0,
    )
    sensor = VideoFetchSensor(
        task_id="sensor_deferred",
        request_id="{{ ti.xcom_pull('submit_only', key='request_id') }}",
        deferrable=True,
        execution_timeout=EXECUTION_TIMEOUT,
        poke_interval=POLL,
        retries=0,
    )
    submit_only >> sensor
