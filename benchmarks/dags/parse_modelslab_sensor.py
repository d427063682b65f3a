"""Parse cost of this provider while its operators are not written yet: sensor only (stand-in)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, BaseOperator

from modelslab_provider.sensors.video import VideoFetchSensor


class Submit(BaseOperator):
    def __init__(self, *, endpoint: str, payload: dict, **kwargs):
        super().__init__(**kwargs)
        self.endpoint = endpoint
        self.payload = payload

    def execute(self, context):
        return None


with DAG(
    dag_id="parse_cost",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
):
    t2v = Submit(task_id="text_to_video", endpoint="text2video", payload={"prompt": "a cat"})
    i2v = Submit(task_id="image_to_video", endpoint="img2video", payload={"init_image": "https://x/y.png"})
    v7 = Submit(task_id="fusion", endpoint="v7/text-to-video", payload={"prompt": "a dog", "model_id": "m"})
    wait = VideoFetchSensor(
        task_id="wait", request_id="{{ ti.xcom_pull('text_to_video', key='request_id') }}", deferrable=True
    )
    t2v >> wait
    [i2v, v7] >> wait
