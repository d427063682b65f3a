"""Fifty mapped, deferrable generations on an account whose queue holds 5 running jobs.

Submissions refused because the queue is full wait in the triggerer and are resubmitted within
the task's ``timeout``; ``collect`` receives the 50 URL lists through the mapped XCom.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task

from modelslab_provider.operators.video import ModelsLabTextToVideoOperator

TAG = "{{ dag_run.conf.get('tag', 'untagged') }}"
COUNT = 50


@task
def collect(outputs: list[list[str]]) -> int:
    urls = [urls[0] for urls in outputs]
    assert len(urls) == COUNT, len(urls)
    assert len(set(urls)) == COUNT, "every mapped task has its own video"
    return len(urls)


with DAG(
    dag_id="operators_rate_limit",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["test"],
):
    clips = ModelsLabTextToVideoOperator.partial(
        task_id="generate",
        deferrable=True,
        poll_interval=0.2,
        max_poll_interval=1.0,
        timeout=240,
        retries=0,
    ).expand(prompt=[f"clip {index} {TAG} [sim:duration=0.2]" for index in range(COUNT)])
    collect(clips.output)
