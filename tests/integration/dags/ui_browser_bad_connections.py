"""For test_ui_browser: tasks whose connection was saved in the UI with a bad field.

The Airflow form saves any standard field as typed, so the first task that uses such a
connection must fail at once with an error that names the field to fix; a refused key fails
with the same wording as the connection's Test button.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from modelslab_provider.operators.video import ModelsLabTextToVideoOperator

with DAG(
    dag_id="ui_browser_bad_connections",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 0},
):
    ModelsLabTextToVideoOperator(
        task_id="no_key", modelslab_conn_id="modelslab_no_key", prompt="never sent [sim:instant=1]"
    )
    ModelsLabTextToVideoOperator(
        task_id="wrong_key", modelslab_conn_id="modelslab_wrong_key", prompt="never made [sim:instant=1]"
    )
    ModelsLabTextToVideoOperator(
        task_id="no_host", modelslab_conn_id="modelslab_no_host", prompt="never sent [sim:instant=1]"
    )
