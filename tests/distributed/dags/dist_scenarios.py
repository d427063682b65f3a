"""DAGs of the distributed scenarios (tests/distributed/test_deployment.py); sized by environment variables.

Job lengths are set per job with simulator markers: ``polls=N`` (ready at the N-th fetch) where a
scenario just runs, ``duration=3600`` where the test decides when a job is ready (it calls the
simulator's ``/_sim/jobs/<id>/complete`` once its fault has been injected).
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG, task

from modelslab_provider.operators.video import ModelsLabTextToVideoOperator
from modelslab_provider.sensors.video import VideoFetchSensor

SPREAD_N = int(os.environ.get("DIST_SPREAD_N", "100"))
FAILOVER_N = int(os.environ.get("DIST_FAILOVER_N", "100"))
DB_N = int(os.environ.get("DIST_DB_N", "50"))
START = pendulum.datetime(2026, 1, 1, tz="UTC")
#: polls every 2-3 s, so a forced completion is seen quickly; held jobs report a 5 s ETA because
#: the poll policy waits for a far ETA (up to 15 min) whatever ``max_poll_interval`` says
FAST = {"poll_interval": 2, "max_poll_interval": 3}
FAST_POLICY = {"min_interval": 2, "interval": 2, "max_interval": 3}
HELD = "[sim:duration=3600 eta=5]"


@task
def submit_videos(label: str, count: int, marker: str) -> list[str]:
    """Submit ``count`` videos at once (one task); sensors then wait for them."""
    from modelslab_provider.hooks.modelslab import ModelsLabHook

    hook = ModelsLabHook()
    ids = []
    for i in range(count):
        result = hook.submit("text2video", {"prompt": f"{label} {i} {marker}"})
        assert result.request_id is not None
        ids.append(result.request_id)
    return ids


# 1. spread: mapped deferrable operators and deferrable sensors over two triggerers
with DAG(dag_id="dist_spread", schedule=None, start_date=START, catchup=False):
    ModelsLabTextToVideoOperator.partial(task_id="generate", deferrable=True, **FAST).expand(
        prompt=[f"spread op {i} [sim:polls=3]" for i in range(SPREAD_N)]
    )
    VideoFetchSensor.partial(
        task_id="wait", deferrable=True, poke_interval=2, poll_policy=FAST_POLICY, timeout=1800
    ).expand(request_id=submit_videos.override(task_id="submit")("spread sensor", SPREAD_N, "[sim:polls=3]"))

# 2. triggerer killed: the jobs stay running until the test completes them
with DAG(dag_id="dist_failover", schedule=None, start_date=START, catchup=False):
    ModelsLabTextToVideoOperator.partial(task_id="generate", deferrable=True, **FAST).expand(
        prompt=[f"failover op {i} {HELD}" for i in range(FAILOVER_N)]
    )

# 3. worker killed during a synchronous wait, and during a reschedule-mode poke (every fetch of that
#    job answers after 5 s, so a poke is in flight long enough to be killed in)
with DAG(dag_id="dist_worker_kill", schedule=None, start_date=START, catchup=False):
    ModelsLabTextToVideoOperator(
        task_id="sync_generate",
        prompt=f"worker kill sync {HELD}",
        deferrable=False,
        retries=1,
        retry_delay=1,
        **FAST,
    )
    slow = "fault=slow slow_s=5 fault_on=" + ",".join(str(n) for n in range(1, 200))
    marker = f"[sim:duration=3600 {slow}]"
    submitted = submit_videos.override(task_id="submit_poke")("worker kill poke", 1, marker)
    submitted >> VideoFetchSensor(
        task_id="poke_wait",
        request_id="{{ ti.xcom_pull(task_ids='submit_poke')[0] }}",
        mode="reschedule",
        deferrable=False,
        poke_interval=2,
        timeout=1800,
        retries=1,
        retry_delay=1,
    )

# 4. PostgreSQL restarted while the waits are deferred
with DAG(dag_id="dist_db_restart", schedule=None, start_date=START, catchup=False):
    ModelsLabTextToVideoOperator.partial(task_id="generate", deferrable=True, **FAST).expand(
        prompt=[f"db restart op {i} {HELD}" for i in range(DB_N)]
    )
