"""Parse cost of the same DAG written with the HTTP provider (key in the JSON body, as ModelsLab needs)."""

from __future__ import annotations

import json

import pendulum
from airflow.providers.http.operators.http import HttpOperator
from airflow.providers.http.sensors.http import HttpSensor
from airflow.sdk import DAG

KEY = "{{ conn.modelslab_http.password }}"
HEADERS = {"Content-Type": "application/json"}


def ready(response) -> bool:
    return response.json().get("status") == "success"


with DAG(
    dag_id="parse_cost",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
):
    t2v = HttpOperator(
        task_id="text_to_video",
        http_conn_id="modelslab_http",
        endpoint="api/v6/video/text2video",
        data=json.dumps({"key": KEY, "prompt": "a cat"}),
        headers=HEADERS,
        response_filter=lambda r: r.json()["id"],
    )
    i2v = HttpOperator(
        task_id="image_to_video",
        http_conn_id="modelslab_http",
        endpoint="api/v6/video/img2video",
        data=json.dumps({"key": KEY, "init_image": "https://x/y.png"}),
        headers=HEADERS,
        deferrable=True,
    )
    v7 = HttpOperator(
        task_id="fusion",
        http_conn_id="modelslab_http",
        endpoint="api/v7/video-fusion/text-to-video",
        data=json.dumps({"key": KEY, "prompt": "a dog", "model_id": "m"}),
        headers=HEADERS,
    )
    wait = HttpSensor(
        task_id="wait",
        http_conn_id="modelslab_http",
        method="POST",
        endpoint="api/v6/video/fetch/{{ ti.xcom_pull('text_to_video') }}",
        request_params={"key": KEY},
        response_check=ready,
        mode="reschedule",
    )
    t2v >> wait
    [i2v, v7] >> wait
