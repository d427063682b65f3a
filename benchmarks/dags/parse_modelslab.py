"""Parse cost of this provider: the four-task DAG with its operators and sensor."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from modelslab_provider.operators.video import (
    ModelsLabImageToVideoOperator,
    ModelsLabTextToVideoOperator,
    ModelsLabVideoOperator,
)
from modelslab_provider.sensors.video import VideoFetchSensor

with DAG(
    dag_id="parse_cost",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
):
    t2v = ModelsLabTextToVideoOperator(task_id="text_to_video", prompt="a cat", wait_for_completion=False)
    i2v = ModelsLabImageToVideoOperator(
        task_id="image_to_video", init_image="https://x/y.png", deferrable=True
    )
    v7 = ModelsLabVideoOperator(
        task_id="fusion", endpoint="v7/text-to-video", payload={"prompt": "a dog", "model_id": "m"}
    )
    wait = VideoFetchSensor(
        task_id="wait", request_id="{{ ti.xcom_pull('text_to_video', key='request_id') }}", deferrable=True
    )
    t2v >> wait
    [i2v, v7] >> wait
