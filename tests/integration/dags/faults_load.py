"""Load: ``FAULTS_LOAD_N`` (default 200) deferrable sensors waiting at once in one triggerer.

``submit`` starts one simulator job per map index that never finishes on its own
(``test_trigger_load.py`` completes them all at once when every sensor is deferred); ``wait``
is a mapped deferrable ``VideoFetchSensor``; ``count`` checks that every URL list came back.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG, task

from modelslab_provider.sensors.video import VideoFetchSensor

N = int(os.environ.get("FAULTS_LOAD_N", "200"))
POLL = {"min_interval": 3.0, "interval": 3.0, "max_interval": 6.0}

with DAG(
    dag_id="faults_load",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=N + 10,
    tags=["test", "faults"],
):

    @task
    def submit() -> list[str]:
        from modelslab_provider.hooks.modelslab import ModelsLabHook

        hook = ModelsLabHook()
        ids = []
        for i in range(N):
            result = hook.submit("text2video", {"prompt": f"load {i} [sim:duration=3600 eta=2]"})
            assert result.request_id is not None
            ids.append(result.request_id)
        return ids

    wait = VideoFetchSensor.partial(
        task_id="wait",
        deferrable=True,
        poll_policy=POLL,
        timeout=900,
        max_active_tis_per_dag=N,
    ).expand(request_id=submit())

    @task
    def count(results: list[list[str]]) -> int:
        urls = [u for batch in results for u in batch]
        assert len(urls) == N == len(set(urls)), (len(urls), N)
        return len(urls)

    count(wait.output)
