"""The batch rows of the fault matrix (``tests/FAULT_MATRIX.md``, "Video batches").

Rows and expectations live in ``reliability/matrix.py`` (``BATCH_FAULTS``), the cells are tasks of
``dags/faults_batch.py``. The ``airflow dags test`` rows run against their own simulator (batch
limit shortened to a few seconds); the triggerer-restart row needs a real scheduler and triggerer.
Every cell asserts its outcome on the first try, the log line, the batch's entry outcomes, exactly
one batch submit, the batch fetches, and that no single video was ever fetched.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelslab_provider.simulator import Simulator
from tests.integration.airflow_run import (
    CANARY_KEY,
    TEST_DAGS,
    AirflowComponents,
    DagRunResult,
    free_port,
    live_env,
    run_dag_test,
)
from tests.integration.reliability.harness import clone_home, connection_env, task_logs
from tests.integration.reliability.matrix import (
    BATCH_ENTRY_LIMIT,
    BATCH_FAULT,
    CONNECTION_EXTRA,
    DAGS_TEST,
    TRIGGERER_RESTART,
    batch_cells,
    task_id,
)
from tests.integration.test_fault_matrix import _final_ti, _final_xcom, _restart_triggerer, _trigger_logs

DAG_FILE = TEST_DAGS / "faults_batch.py"
CELLS = [(f, c) for f, c in batch_cells() if BATCH_FAULT[f].runner == DAGS_TEST]


def batch_submits(entries: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """Batch submits whose entries' prompts name ``text`` (a cell)."""
    return [
        e
        for e in entries
        if e.get("path") == "/api/v6/video/batch"
        and isinstance(e.get("body"), dict)
        and any(text in str(r.get("prompt", "")) for r in e["body"].get("requests") or [])
    ]


def batch_fetches(entries: list[dict[str, Any]], batch_id: str) -> list[dict[str, Any]]:
    return [e for e in entries if e.get("path") == f"/api/v6/video/batch/fetch/{batch_id}"]


@pytest.fixture(scope="module")
def batch_sim() -> Iterator[Simulator]:
    with Simulator(port=0, duration=1, batch_entry_limit=BATCH_ENTRY_LIMIT) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def batch_run(
    batch_sim: Simulator, airflow_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[DagRunResult, dict[str, str], list[dict[str, Any]]]:
    home = clone_home(airflow_home, tmp_path_factory.mktemp("faults_batch"))
    env = connection_env(batch_sim.url, **CONNECTION_EXTRA)
    result = run_dag_test(home, DAG_FILE, "faults_batch", sim_url=batch_sim.url, env=env, timeout=420)
    return result, task_logs(result.output), batch_sim.requests()


@pytest.mark.parametrize(("fault", "column"), CELLS, ids=[f"{f}-{c}" for f, c in CELLS])
def test_batch_cell(
    batch_run: tuple[DagRunResult, dict[str, str], list[dict[str, Any]]], fault: str, column: str
) -> None:
    result, logs, requests = batch_run
    spec = BATCH_FAULT[fault]
    tid = task_id(fault, column)
    log = logs.get(tid, "")
    context = f"\n--- {tid} log tail ---\n{log[-5000:]}"
    result.assert_state(tid, spec.outcome)
    assert result.tries(tid) == 1, context
    assert spec.message in log, context
    assert CANARY_KEY not in log
    submits = batch_submits(requests, f"faults_batch/{tid} ")
    assert len(submits) == spec.submits, context
    # never one fetch per video
    assert not [e for e in requests if e["path"].startswith("/api/v6/video/fetch/")]
    batch_ids = result.xcom(tid, "batch_ids")
    if spec.statuses is None:
        assert "AirflowFailException" in log, context
        # what to look for in the dashboard: derived track ids name the DAG and the task
        assert f"track_id {result.dag_id}.{tid}-" in log, context
        assert result.xcom(tid, "results") is None
        return
    assert isinstance(batch_ids, list), context
    assert len(batch_ids) == 1
    fetches = len(batch_fetches(requests, batch_ids[0]))
    low, high = spec.fetches
    assert low <= fetches <= high, f"{fetches} batch fetches, expected {spec.fetches}{context}"
    results = result.xcom(tid, "results")
    assert [r["status"] for r in results] == list(spec.statuses), results
    assert [r["refunded"] for r in results] == list(spec.refunded), results
    assert [r["index"] for r in results] == [0, 1, 2]
    urls = result.xcom(tid)
    if spec.outcome == "failed":
        assert "AirflowFailException" in log, context
        assert urls is None
    else:
        assert isinstance(urls, list)
        # allow_partial_failure: return_value keeps the successful inputs only, in input order
        assert len(urls) == sum(1 for s in spec.statuses if s == "success")
        assert [list(u) for u in urls] == [r["urls"] for r in results if r["status"] == "success"]


# --------------------------------------------------------------------------- triggerer restart


def test_batch_triggerer_restart(sim: Simulator, airflow_home: Path, tmp_path: Path) -> None:
    """A deferred batch wait survives a triggerer restart: one submit, one event, every video."""
    dag_id = "faults_batch_triggerer_restart"
    (fault, column) = next((f, c) for f, c in batch_cells() if BATCH_FAULT[f].runner == TRIGGERER_RESTART)
    spec = BATCH_FAULT[fault]
    tid = task_id(fault, column)
    home = clone_home(airflow_home, tmp_path / "home")
    (home / "dags" / DAG_FILE.name).symlink_to(DAG_FILE)
    env = live_env(
        home, sim.url, api_port=free_port(), parallelism=4, **connection_env(sim.url, **CONNECTION_EXTRA)
    )
    with AirflowComponents(home, env) as af:
        af.start("api-server", "dag-processor", "scheduler", "triggerer")
        af.wait_until(
            "the DAG to be parsed", lambda: af.query("SELECT 1 FROM dag WHERE dag_id=?", dag_id), 120
        )
        triggered = af.airflow("dags", "trigger", dag_id)
        assert triggered.returncode == 0, triggered.stdout + triggered.stderr
        run_id = af.wait_until(
            "the DAG run", lambda: af.query("SELECT run_id FROM dag_run WHERE dag_id=?", dag_id), 60
        )[0][0]

        def state() -> Any:
            rows = af.query(
                "SELECT state FROM task_instance WHERE dag_id=? AND run_id=? AND task_id=?",
                dag_id,
                run_id,
                tid,
            )
            return rows[0][0] if rows else None

        af.wait_until("the batch task to defer", lambda: state() == "deferred", 180)
        rows = af.query(
            "SELECT value FROM xcom WHERE dag_id=? AND run_id=? AND task_id=? AND key='batch_ids'",
            dag_id,
            run_id,
            tid,
        )
        batch_id = json.loads(rows[0][0])[0]
        deferred_at = time.time()
        af.wait_until(
            "a batch poll from the triggerer",
            lambda: any(e["ts"] > deferred_at for e in batch_fetches(sim.requests(), batch_id)),
            60,
        )
        stopped, started = _restart_triggerer(af)
        af.wait_until(
            "the new triggerer to poll the batch",
            lambda: any(e["ts"] > started for e in batch_fetches(sim.requests(), batch_id)),
            180,
        )
        for job in sim.batches()[batch_id]["job_ids"]:
            assert sim.complete(job)
        finished = af.wait_until(
            "the DAG run to finish",
            lambda: af.query(
                "SELECT state FROM dag_run WHERE run_id=? AND state IN ('success','failed')", run_id
            ),
            180,
        )
        assert finished[0][0] == "success", af.logs_tail()
    final = _final_ti(home, dag_id, run_id, tid)
    assert final[:2] == (spec.outcome, 1), final
    requests = sim.requests()
    assert len(batch_submits(requests, f"{dag_id}/{tid} ")) == spec.submits  # exactly one paid call
    fetches = batch_fetches(requests, batch_id)
    assert spec.fetches[0] <= len(fetches) <= spec.fetches[1]
    assert not [e for e in fetches if stopped < e["ts"] < started], "nobody polled while it was down"
    urls = _final_xcom(home, dag_id, run_id, tid)
    assert isinstance(urls, list)
    assert len(urls) == 3
    assert all(u and u[0].startswith(sim.url + "/files/") for u in urls), urls
    logs = _trigger_logs(home, dag_id, tid)
    assert len(logs) == 2, list(logs)  # the trigger ran in both triggerers
    assert all(spec.message in text for text in logs.values()), logs
    fired = sum(text.count("All 1 batch of 3 videos finished") for text in logs.values())
    assert fired == 1, logs
    assert CANARY_KEY not in "".join(logs.values())
