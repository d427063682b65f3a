"""Parse-cost baseline: the same four-task DAG built from ``airflow.sdk`` base classes only."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, BaseOperator, BaseSensorOperator


class Submit(BaseOperator):
    template_fields = ("payload",)

    def __init__(self, *, endpoint: str, payload: dict, **kwargs):
        super().__init__(**kwargs)
        self.endpoint = endpoint
        self.payload = payload

    def execute(self, context):
        return None


class Wait(BaseSensorOperator):
    template_fields = ("request_id",)

    def __init__(self, *, request_id: str, **kwargs):
        super().__init__(**kwargs)
        self.request_id = request_id

    def poke(self, context):
        return True


with DAG(
    dag_id="parse_cost",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
):
    t2v = Submit(task_id="text_to_video", endpoint="text2video", payload={"prompt": "a cat"})
    i2v = Submit(task_id="image_to_video", endpoint="img2video", payload={"init_image": "https://x/y.png"})
    v7 = Submit(task_id="fusion", endpoint="v7/text-to-video", payload={"prompt": "a dog", "model_id": "m"})
    wait = Wait(task_id="wait", request_id="{{ ti.xcom_pull('text_to_video', key='request_id') }}")
    t2v >> wait
    [i2v, v7] >> wait
