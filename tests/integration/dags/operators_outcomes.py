"""The video operators' outcomes in one DAG run: success (sync, deferred, instant, mapped, v7,
image), failure, timeout, bad input and API validation messages, plus XCom use downstream.

Every prompt carries the run's ``tag`` (from the run conf) so the test can count this run's
submissions on the shared simulator. Tasks are independent, so one failing does not stop others.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task

from modelslab_provider.operators.video import (
    ModelsLabImageToVideoOperator,
    ModelsLabTextToVideoOperator,
    ModelsLabVideoOperator,
)
from modelslab_provider.sensors.video import VideoFetchSensor

TAG = "{{ dag_run.conf.get('tag', 'untagged') }}"
FAST = {"poll_interval": 0.2, "max_poll_interval": 1.0}


@task
def check_urls(urls: list[str], request_id: str) -> int:
    """A downstream task receives the URLs (return_value) and the request id (its own key)."""
    assert isinstance(urls, list), urls
    assert urls, urls
    assert all(u.startswith("http://127.0.0.1") and u.endswith(".mp4") for u in urls), urls
    assert isinstance(request_id, str), request_id
    assert request_id.isdigit(), request_id
    return len(urls)


with DAG(
    dag_id="operators_outcomes",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=0)},
    tags=["test"],
):
    sync_ok = ModelsLabTextToVideoOperator(
        task_id="sync_ok", prompt=f"a cat {TAG} [sim:duration=1]", model_id="wan2.2", **FAST
    )
    check_urls.override(task_id="check_sync_ok")(
        sync_ok.output, "{{ ti.xcom_pull(task_ids='sync_ok', key='request_id') }}"
    )

    deferred_ok = ModelsLabTextToVideoOperator(
        task_id="deferred_ok", prompt=f"a dog {TAG} [sim:duration=1]", deferrable=True, **FAST
    )
    check_urls.override(task_id="check_deferred_ok")(
        deferred_ok.output, "{{ ti.xcom_pull(task_ids='deferred_ok', key='request_id') }}"
    )

    ModelsLabTextToVideoOperator(
        task_id="instant", prompt=f"a fox {TAG} [sim:instant=1]", deferrable=True, **FAST
    )

    ModelsLabTextToVideoOperator.partial(task_id="mapped", deferrable=True, **FAST).expand(
        prompt=[f"a bird {TAG} [sim:duration=0.5]", f"a fish {TAG} [sim:duration=0.5]", f"a frog {TAG}"]
    )

    ModelsLabVideoOperator(
        task_id="fusion_ok",
        endpoint="v7/text-to-video",
        payload={"model_id": "veo-3", "prompt": f"waves {TAG} [sim:duration=1]", "duration": "8"},
        deferrable=True,
        **FAST,
    )

    ModelsLabImageToVideoOperator(
        task_id="image_ok",
        init_image="https://example.com/cat.png",
        prompt=f"make it move {TAG} [sim:duration=0.5]",
        **FAST,
    )

    # submit only; a sensor downstream waits for the request id from XCom
    submit_only = ModelsLabTextToVideoOperator(
        task_id="submit_only", prompt=f"a cow {TAG} [sim:duration=1]", wait_for_completion=False, **FAST
    )
    submit_only >> VideoFetchSensor(
        task_id="wait_submit_only",
        request_id="{{ ti.xcom_pull(task_ids='submit_only', key='request_id') }}",
        deferrable=True,
        poll_policy={"min_interval": 0.2, "interval": 0.2, "max_interval": 1.0},
    )

    ModelsLabTextToVideoOperator(
        task_id="sync_failed", prompt=f"a rat {TAG} [sim:outcome=failed duration=1]", **FAST
    )
    ModelsLabTextToVideoOperator(
        task_id="deferred_failed",
        prompt=f"an owl {TAG} [sim:outcome=failed duration=1 messege=1]",
        deferrable=True,
        **FAST,
    )

    ModelsLabTextToVideoOperator(
        task_id="sync_timeout", prompt=f"a bat {TAG} [sim:outcome=never]", timeout=2, retries=0, **FAST
    )
    ModelsLabTextToVideoOperator(
        task_id="deferred_timeout",
        prompt=f"a yak {TAG} [sim:outcome=never]",
        timeout=2,
        retries=0,
        deferrable=True,
        **FAST,
    )

    ModelsLabTextToVideoOperator(
        task_id="empty_prompt", prompt="{{ dag_run.conf.get('missing', '') }}", **FAST
    )
    ModelsLabImageToVideoOperator(task_id="no_image", init_image="", **FAST)
    ModelsLabVideoOperator(task_id="string_payload", endpoint="text2video", payload="{{ 'prompt' }}", **FAST)
    ModelsLabVideoOperator(task_id="unknown_endpoint", endpoint="text2movie", payload={"prompt": "x"}, **FAST)
    ModelsLabVideoOperator(
        task_id="api_prompt_required", endpoint="text2video", payload={"negative_prompt": TAG}, **FAST
    )
    ModelsLabVideoOperator(
        task_id="api_model_not_found",
        endpoint="v7/text-to-video",
        payload={"model_id": "no-such-model", "prompt": TAG},
        **FAST,
    )
