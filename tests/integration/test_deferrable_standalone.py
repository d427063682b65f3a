"""The deferrable sensor under a real scheduler, triggerer, dag-processor and LocalExecutor.

``dags test`` runs triggers inline; here the trigger must travel through the database to a
separate triggerer process. The DAG (``dags/sensor_live.py``) gives the executor a single worker
slot: ``meanwhile`` (lower priority) can only start while ``wait`` is deferred, so its start
before ``wait`` ends shows that no worker slot was held during the wait.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from modelslab_provider.simulator import Simulator
from tests.integration.airflow_run import (
    CANARY_KEY,
    TEST_DAGS,
    AirflowComponents,
    free_port,
    live_env,
    migrate,
)

DAG_ID = "sensor_live"
CLASSPATH = "modelslab_provider.triggers.video.VideoFetchTrigger"


@pytest.fixture
def live_airflow(tmp_path: Path, sim: Simulator) -> Iterator[AirflowComponents]:
    """Scheduler, triggerer, dag-processor and execution API on a fresh AIRFLOW_HOME (one slot)."""
    home = tmp_path / "airflow"
    migrate(home)
    shutil.copy(TEST_DAGS / "sensor_live.py", home / "dags" / "sensor_live.py")
    env = live_env(home, sim.url, api_port=free_port(), parallelism=1)
    components = AirflowComponents(home, env)
    try:
        components.start("api-server", "dag-processor", "scheduler", "triggerer")
        yield components
    finally:
        components.stop()


def ts(value: str | None) -> float:
    assert value is not None
    return datetime.fromisoformat(value).timestamp()


def test_deferred_sensor_holds_no_worker_slot(live_airflow: AirflowComponents, sim: Simulator) -> None:
    af = live_airflow
    af.wait_until("the DAG to be parsed", lambda: af.query("SELECT 1 FROM dag WHERE dag_id=?", DAG_ID), 90)
    # the video finishes only when the test says so (below): how fast Airflow runs does not matter
    triggered = af.airflow("dags", "trigger", DAG_ID, "-c", '{"scenario": "outcome=never"}')
    assert triggered.returncode == 0, triggered.stdout + triggered.stderr
    run_id = af.wait_until(
        "the DAG run", lambda: af.query("SELECT run_id FROM dag_run WHERE dag_id=?", DAG_ID), 30
    )[0][0]

    def ti(task_id: str) -> tuple[str | None, str | None, str | None, int | None]:
        rows = af.query(
            "SELECT state, start_date, end_date, trigger_id FROM task_instance "
            "WHERE dag_id=? AND run_id=? AND task_id=?",
            DAG_ID,
            run_id,
            task_id,
        )
        return rows[0] if rows else (None, None, None, None)

    # while the video renders, the sensor is DEFERRED with a row in the trigger table
    deferred = af.wait_until("the sensor to defer", lambda: ti("wait")[0] == "deferred" and ti("wait"), 90)
    trigger_rows = af.query("SELECT classpath, kwargs FROM trigger WHERE id=?", deferred[3])
    assert trigger_rows, "a deferred task instance points at its trigger row"
    assert trigger_rows[0][0] == CLASSPATH
    assert CANARY_KEY not in str(trigger_rows[0][1])

    # the single worker slot runs ``meanwhile`` while the sensor waits; then the video is done
    af.wait_until("meanwhile to run during the wait", lambda: ti("meanwhile")[0] == "success", 150)
    assert ti("wait")[0] == "deferred"
    submitted = af.query(
        "SELECT value FROM xcom WHERE dag_id=? AND run_id=? AND task_id='submit' AND key='return_value'",
        DAG_ID,
        run_id,
    )
    assert sim.complete(json.loads(submitted[0][0]))

    finished = af.wait_until(
        "the DAG run to finish",
        lambda: af.query(
            "SELECT state FROM dag_run WHERE run_id=? AND state IN ('success', 'failed')", run_id
        ),
        150,
    )
    states = {t: ti(t)[0] for t in ("submit", "wait", "meanwhile")}
    assert finished[0][0] == "success", f"{states}\n{af.logs_tail()}"
    assert states == {"submit": "success", "wait": "success", "meanwhile": "success"}

    # the single worker slot was free while the sensor waited: ``meanwhile`` ran inside the wait
    _, _, wait_end, _ = ti("wait")
    _, meanwhile_start, meanwhile_end, _ = ti("meanwhile")
    assert ts(meanwhile_start) < ts(wait_end)
    assert ts(meanwhile_end) < ts(wait_end)

    # the triggerer process (not a worker, not an inline runner) polled ModelsLab and the URLs came back
    assert "Waiting for ModelsLab request" in af.log("triggerer") or _trigger_logged(af.home)
    urls = af.query(
        "SELECT value FROM xcom WHERE dag_id=? AND run_id=? AND task_id='wait' AND key='return_value'",
        DAG_ID,
        run_id,
    )
    assert urls
    assert ".mp4" in str(urls[0][0])
    assert not af.query("SELECT 1 FROM trigger WHERE id=?", deferred[3])  # cleaned up after the event


def _trigger_logged(home: Path) -> bool:
    """Trigger log lines go to the task's log file in Airflow 3; look for ours there."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for path in (home / "logs").rglob("*"):
            if path.is_file() and "Waiting for ModelsLab request" in path.read_text(errors="replace"):
                return True
        time.sleep(0.5)
    return False
