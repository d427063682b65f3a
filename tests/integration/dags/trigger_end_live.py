"""Waits that end in the triggerer, beside the same waits resumed on a worker, in one DAG run.

Run by tests/integration/test_trigger_end_live.py under a real scheduler, triggerer and
LocalExecutor. ``probe`` reads what downstream tasks receive from both paths; the other cells
check a final failure (not retried), a timeout (retried), ``soft_fail`` (skipped), a sensor
started in the triggerer, batches (one partly failed, one failing for good), and mapped tasks
over trigger-ended tasks' outputs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, get_current_context, task

from modelslab_provider.operators.batch import ModelsLabVideoBatchOperator
from modelslab_provider.operators.video import ModelsLabTextToVideoOperator
from modelslab_provider.sensors.video import VideoFetchSensor

FAST = {"poll_interval": 0.5, "max_poll_interval": 1.0}
SENSOR_POLLS = {"min_interval": 0.5, "max_interval": 1.0, "interval": 0.5}
KEYS = (
    "return_value",
    "video_url",
    "proxy_links",
    "request_id",
    "api_version",
    "track_id",
    "eta",
    "meta",
    "generation_time",
)
#: the batch operator's XComs (the record's ``batch_ids``, then the engine's outputs)
BATCH_KEYS = ("return_value", "results", "video_url", "batch_ids", "request_ids")


def _shape(value: Any) -> Any:
    """The type of a pulled XCom (and of a list's items): what a downstream task relies on."""
    if isinstance(value, list):
        return ["list", sorted({type(v).__name__ for v in value})]
    return type(value).__name__


@task
def submit(scenario: str) -> str:
    """A request submitted by a plain task, for the sensors to wait on."""
    from modelslab_provider.hooks.modelslab import ModelsLabHook

    return ModelsLabHook().submit("text2video", {"prompt": f"a heron [sim:{scenario}]"}).request_id


@task
def probe() -> dict[str, Any]:
    """What a downstream task receives from each path, key by key (types, and the list of URLs)."""
    ti = get_current_context()["ti"]
    out: dict[str, Any] = {}
    for source in ("gen_trigger", "gen_worker", "slow"):
        out[source] = {key: _shape(ti.xcom_pull(task_ids=source, key=key)) for key in KEYS}
    for source in ("sensor_start", "sensor_deferred", "batch_trigger", "batch_worker"):
        out[source] = _shape(ti.xcom_pull(task_ids=source))
    for source in ("batch_trigger", "batch_worker", "batch_partial"):
        out[f"{source}_keys"] = {key: _shape(ti.xcom_pull(task_ids=source, key=key)) for key in BATCH_KEYS}
    out["partial_results"] = [r["status"] for r in ti.xcom_pull(task_ids="batch_partial", key="results")]
    out["partial_urls"] = ti.xcom_pull(task_ids="batch_partial")
    out["batch_results"] = _shape(ti.xcom_pull(task_ids="batch_trigger", key="results"))
    out["urls"] = ti.xcom_pull(task_ids="gen_trigger")
    out["batch_urls"] = ti.xcom_pull(task_ids="batch_trigger")
    return out


@task
def each_input(urls: list[str]) -> int:
    """Mapped over a partly failed batch's output (the README's pattern): one task per video."""
    assert isinstance(urls, list), urls
    assert urls, urls
    return len(urls)


@task
def each(url: str) -> str:
    """Mapped over a trigger-ended task's list of URLs: Airflow needs the list's length for this."""
    assert isinstance(url, str), url
    assert url.startswith("http"), url
    return url


with DAG(
    dag_id="trigger_end_live",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=1)},
    tags=["test"],
):
    gen_trigger = ModelsLabTextToVideoOperator(
        task_id="gen_trigger", prompt="a cat [sim:duration=4]", deferrable=True, **FAST
    )
    gen_worker = ModelsLabTextToVideoOperator(
        task_id="gen_worker",
        prompt="a cat [sim:polls=6]",
        deferrable=True,
        end_from_trigger=False,
        **FAST,
    )
    # the test stops the triggerer while this one waits, starts a new one, and only then lets the
    # video finish (sim.complete): how long the triggerers take to start does not matter
    slow = ModelsLabTextToVideoOperator(
        task_id="slow", prompt="a slow cat [sim:outcome=never]", deferrable=True, **FAST
    )
    # Tasks that resume on a worker end at their trigger's 6th-8th poll (at least 3 s after it
    # started), not after a time from the submit, which a loaded machine can use up before the
    # deferral: a trigger that fires within a second or two of the deferral can beat the
    # executor's event for the deferring run, and Airflow 3.3.2's scheduler then fails the try and
    # retries it ("finished with state success, but the task instance's state attribute is
    # queued"; docs/upstream.md, entry 4), which would hide whether our final failure is retried.
    fail_final = ModelsLabTextToVideoOperator(
        task_id="fail_final", prompt="a doomed cat [sim:polls=8 outcome=failed]", deferrable=True, **FAST
    )
    timeout_retry = ModelsLabTextToVideoOperator(
        task_id="timeout_retry",
        prompt="a very slow cat [sim:duration=600]",
        deferrable=True,
        timeout=4,
        retries=1,
        **FAST,
    )
    batch_trigger = ModelsLabVideoBatchOperator(
        task_id="batch_trigger",
        model_id="wan2.2",
        prompts=["a red boat", "a green boat", "a blue boat"],
        deferrable=True,
        **FAST,
    )
    batch_worker = ModelsLabVideoBatchOperator(
        task_id="batch_worker",
        model_id="wan2.2",
        prompts=["a red kite", "a green kite [sim:polls=6]", "a blue kite"],
        deferrable=True,
        end_from_trigger=False,
        **FAST,
    )
    # the engine's partial-failure choice, ended in the triggerer: return_value holds the
    # successful inputs only, so a mapped downstream task gets one copy per video
    batch_partial = ModelsLabVideoBatchOperator(
        task_id="batch_partial",
        model_id="wan2.2",
        prompts=["a red bird", "a lost bird [sim:duration=6 outcome=failed]", "a blue bird"],
        allow_partial_failure=True,
        deferrable=True,
        **FAST,
    )
    each_input.expand(urls=batch_partial.output)
    # a failed entry without allow_partial_failure: a final failure, so it resumes on a worker
    ModelsLabVideoBatchOperator(
        task_id="batch_fail_final",
        model_id="wan2.2",
        prompts=["a red fish", "a lost fish [sim:polls=8 outcome=failed]", "a blue fish"],
        deferrable=True,
        **FAST,
    )
    ok_id = submit.override(task_id="submit_ok")("duration=6")
    # [START sensor_start]
    sensor_start = VideoFetchSensor(
        task_id="sensor_start",
        request_id=ok_id,  # an upstream task's output: rendered in the triggerer (Airflow 3.3+)
        start_from_trigger=True,
        timeout=120,
        poll_policy=SENSOR_POLLS,
    )
    # [END sensor_start]
    sensor_deferred = VideoFetchSensor(
        task_id="sensor_deferred",
        request_id="{{ ti.xcom_pull('submit_later') }}",
        deferrable=True,
        timeout=120,
        poll_policy=SENSOR_POLLS,
    )
    # ready at its 3rd fetch: the worker's first poke (if any) finds it running, so it defers
    submit.override(task_id="submit_later")("polls=3") >> sensor_deferred
    failed_id = submit.override(task_id="submit_failed")("duration=6 outcome=failed")
    VideoFetchSensor(
        task_id="soft_fail",
        request_id=failed_id,
        deferrable=True,
        soft_fail=True,
        timeout=120,
        poll_policy=SENSOR_POLLS,
    )
    VideoFetchSensor(
        task_id="soft_timeout",
        request_id=submit.override(task_id="submit_long")("duration=600"),
        deferrable=True,
        soft_fail=True,
        timeout=8,
        poll_policy=SENSOR_POLLS,
    )
    each.expand(url=gen_trigger.output)
    [
        gen_trigger,
        gen_worker,
        slow,
        sensor_start,
        sensor_deferred,
        batch_trigger,
        batch_worker,
        batch_partial,
    ] >> probe()
