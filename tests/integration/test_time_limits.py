"""execution_timeout holds while a task is deferred (issue 11.7), in a real ``airflow dags test`` run."""

from __future__ import annotations

import re
import sqlite3
import time
import uuid
from datetime import datetime
from pathlib import Path

from modelslab_provider.simulator import Simulator
from tests.integration.airflow_run import TEST_DAGS, run_dag_test

EXECUTION_TIMEOUT = 20
POLL = 2


def _durations(home: Path, dag_id: str, run_id: str) -> dict[str, float]:
    with sqlite3.connect(home / "airflow.db") as db:
        rows = db.execute(
            "SELECT task_id, start_date, end_date FROM task_instance WHERE dag_id=? AND run_id=?",
            (dag_id, run_id),
        ).fetchall()
    return {
        task: (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
        for task, start, end in rows
        if start and end
    }


def test_execution_timeout_ends_a_deferred_wait(sim: Simulator, airflow_home: Path) -> None:
    started = time.monotonic()
    result = run_dag_test(
        airflow_home,
        TEST_DAGS / "time_limits.py",
        "time_limits",
        sim_url=sim.url,
        conf={"tag": f"t{uuid.uuid4().hex[:10]}"},
        timeout=240,
    )
    elapsed = time.monotonic() - started
    for task_id in ("operator_deferred", "sensor_deferred"):
        result.assert_state(task_id, "failed")
        assert result.tries(task_id) == 1
    result.assert_state("submit_only", "success")
    # each wait names the limit it hit (default timeout: 3600 s for the operator, 7 days for the sensor)
    assert len(re.findall(r"when the task's execution_timeout of 20 s ran out", result.output)) >= 2
    # each wait ended at execution_timeout plus about one poll, counted from the job's submission
    # (``dags test`` may spend many seconds starting its first task, before execute runs; and the
    # limit counts from execute, so a submit slowed by a loaded machine shortens what is counted)
    waited = [
        int(n)
        for n in re.findall(
            r"was not ready after (\d+) s \(\d+ polls\) when the task's execution", result.output
        )
    ]
    assert waited, result.output[-3000:]
    assert all(EXECUTION_TIMEOUT - 5 <= n <= EXECUTION_TIMEOUT + POLL + 2 for n in waited), waited
    # the sensor is not the first task, so its DB duration is its real duration
    assert result.run_id is not None
    durations = _durations(airflow_home, "time_limits", result.run_id)
    assert EXECUTION_TIMEOUT - 1 <= durations["sensor_deferred"] <= EXECUTION_TIMEOUT + POLL + 8, durations
    assert elapsed < 3 * EXECUTION_TIMEOUT + 90
