"""Generate a video on the simulator, then store the output and its proxy link (lineage test)."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from modelslab_provider.operators.storage import ModelsLabStoreVideosOperator
from modelslab_provider.operators.video import ModelsLabTextToVideoOperator

with DAG(
    dag_id="lineage_store",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"destination": "file:///tmp/lineage-store/"},
):
    generate = ModelsLabTextToVideoOperator(
        task_id="generate",
        prompt="a heron in the reeds [sim:duration=1 eta=1]",
        deferrable=False,
        poll_interval=0.5,
        timeout=120,
    )
    # the output URL and its proxy link end in the same file name: two files all the same
    # no allow_private_hosts: the simulator is the ModelsLab connection's own Base URL, so trusted
    ModelsLabStoreVideosOperator(
        task_id="store",
        urls="{{ ti.xcom_pull(task_ids='generate') + ti.xcom_pull(task_ids='generate', key='proxy_links') }}",
        destination="{{ params.destination }}",
        retry_initial_delay=0.5,
        retry_max_delay=1.0,
    ).set_upstream(generate)
