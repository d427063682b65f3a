"""A deferrable sensor whose trigger is stalled past the deadline ends as poke mode would.

Real scheduler, triggerer, dag-processor and LocalExecutor (``dags/sensor_stalled.py``). The
triggerer is shut down before the run starts, so no trigger runs and no trigger event can come,
however slowly the machine runs the sensors: the scheduler's deferral timeout (given
``deferral_grace`` after the trigger's deadline) ends the wait. (Freezing the triggerer with
SIGSTOP instead can leave it holding SQLite's write lock, which then kills the other components.)
``strict`` fails as a sensor timeout, without using its retry; ``soft`` (``soft_fail``) is skipped.
"""

from __future__ import annotations

import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelslab_provider.simulator import Simulator
from tests.integration.airflow_run import (
    TEST_DAGS,
    AirflowComponents,
    _signal_group,
    free_port,
    live_env,
    migrate,
)

DAG_ID = "sensor_stalled"


@pytest.fixture
def live_airflow(tmp_path: Path, sim: Simulator) -> Iterator[AirflowComponents]:
    home = tmp_path / "airflow"
    migrate(home)
    shutil.copy(TEST_DAGS / "sensor_stalled.py", home / "dags" / "sensor_stalled.py")
    env = live_env(home, sim.url, api_port=free_port(), parallelism=3)
    components = AirflowComponents(home, env)
    try:
        components.start("api-server", "dag-processor", "scheduler", "triggerer")
        yield components
    finally:
        components.stop()


def _task_log(home: Path, task_id: str) -> str:
    return "\n".join(
        p.read_text(errors="replace")
        for p in (home / "logs").rglob("*")
        if p.is_file() and f"task_id={task_id}" in str(p)
    )


def test_a_stalled_trigger_ends_as_a_sensor_timeout_or_a_soft_fail_skip(
    live_airflow: AirflowComponents,
) -> None:
    af = live_airflow
    af.wait_until("the DAG to be parsed", lambda: af.query("SELECT 1 FROM dag WHERE dag_id=?", DAG_ID), 90)
    triggerer = af.procs.pop("triggerer")  # no trigger runs from here on
    _signal_group(triggerer, signal.SIGTERM)
    triggerer.wait(timeout=60)
    triggered = af.airflow("dags", "trigger", DAG_ID)
    assert triggered.returncode == 0, triggered.stdout + triggered.stderr
    run_id = af.wait_until(
        "the DAG run", lambda: af.query("SELECT run_id FROM dag_run WHERE dag_id=?", DAG_ID), 30
    )[0][0]

    def ti(task_id: str) -> tuple[str | None, int | None]:
        rows = af.query(
            "SELECT state, try_number FROM task_instance WHERE dag_id=? AND run_id=? AND task_id=?",
            DAG_ID,
            run_id,
            task_id,
        )
        return rows[0] if rows else (None, None)

    af.wait_until(
        "both sensors to end",
        lambda: (
            ti("strict")[0] in ("failed", "up_for_retry", "success")
            and ti("soft")[0] in ("skipped", "failed", "up_for_retry", "success")
        ),
        120,
    )
    assert ti("strict") == ("failed", 1), f"{ti('strict')}\n{af.logs_tail()}"  # a sensor timeout: no retry
    assert ti("soft")[0] == "skipped"
    strict_log = _task_log(af.home, "strict")
    assert "AirflowSensorTimeout" in strict_log
    # it deferred, and the scheduler's deferral timeout (not a trigger event) resumed it
    assert "the triggerer did not report by the sensor's deadline (timeout=10 s)" in strict_log
    assert "Skipping" in _task_log(af.home, "soft")
