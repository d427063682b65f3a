"""What the example DAGs do not cover, for the key-leak scan (``test_key_leak.py``).

Every way of waiting and every unhappy path that writes text somewhere (logs, exceptions, XCom,
rendered fields, trigger rows, task state): a poke sensor, a sync and a deferred v7 operator,
a failed job, a try that times out and is retried (it reconnects through ``task_state_store``),
a key ModelsLab refuses (it contains the canary too), and sensors told to poll a
``fetch_result`` on another origin (``params.other_origin``), which must be ignored.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param, task

from modelslab_provider.operators.video import ModelsLabTextToVideoOperator, ModelsLabVideoOperator
from modelslab_provider.sensors.video import VideoFetchSensor

DAG_ID = "faults_leak"
FAST = {"min_interval": 0.5, "max_interval": 2.0, "interval": 0.5}
# ``polls=N``: not ready at the first poke, whenever it comes, so the deferrable ones defer
SUBMITS = {
    "poke": "polls=2 eta=1",
    "failed": "polls=2 eta=1 outcome=failed",
    "other_poke": "polls=2 eta=1",
    "other_deferred": "polls=3 eta=1",
}

with DAG(
    dag_id=DAG_ID,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["test", "faults"],
    params={"other_origin": Param("http://127.0.0.1:9", type="string")},
    default_args={"retries": 1, "retry_delay": timedelta(0)},
):

    @task
    def submit() -> dict[str, str]:
        from modelslab_provider.hooks.modelslab import ModelsLabHook

        hook = ModelsLabHook()
        ids = {}
        for name, scenario in SUBMITS.items():
            result = hook.submit("text2video", {"prompt": f"leak scan {name} [sim:{scenario}]"})
            assert result.request_id is not None
            ids[name] = result.request_id
        return ids

    ids = submit()

    def request(name: str) -> str:
        return "{{ ti.xcom_pull('submit')['" + name + "'] }}"

    poke = VideoFetchSensor(
        task_id="poke_sensor", request_id=request("poke"), mode="poke", poke_interval=0.5, timeout=120
    )
    failed = VideoFetchSensor(
        task_id="failed_sensor", request_id=request("failed"), deferrable=True, poll_policy=FAST, timeout=120
    )
    other_poke = VideoFetchSensor(
        task_id="other_origin_poke",
        request_id=request("other_poke"),
        fetch_url="{{ params.other_origin }}/api/v6/video/fetch/" + request("other_poke"),
        mode="poke",
        poke_interval=0.5,
        timeout=120,
    )
    other_deferred = VideoFetchSensor(
        task_id="other_origin_deferred",
        request_id=request("other_deferred"),
        fetch_url="{{ params.other_origin }}/api/v6/video/fetch/" + request("other_deferred"),
        deferrable=True,
        poll_policy=FAST,
        timeout=120,
    )
    ids >> [poke, failed, other_poke, other_deferred]

    ModelsLabTextToVideoOperator(
        task_id="sync_op", prompt="leak scan sync [sim:duration=2 eta=1]", poll_interval=0.5, deferrable=False
    )
    ModelsLabVideoOperator(
        task_id="v7_deferred_op",
        endpoint="v7/text-to-video",
        payload={"model_id": "veo-3", "prompt": "leak scan v7 [sim:duration=2 eta=1]", "duration": "8"},
        poll_interval=0.5,
        deferrable=True,
    )
    # try 1 runs out of its 4 s budget (a retryable failure); try 2 reconnects to the same request
    ModelsLabTextToVideoOperator(
        task_id="retried_op",
        prompt="leak scan retry [sim:duration=6 eta=5]",
        poll_interval=0.5,
        timeout=4,
        deferrable=False,
    )
    ModelsLabTextToVideoOperator(
        task_id="refused_key",
        prompt="leak scan refused [sim:duration=1]",
        modelslab_conn_id="modelslab_refused",
        poll_interval=0.5,
    )
