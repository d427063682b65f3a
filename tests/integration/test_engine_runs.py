"""Issue 22 in real Airflow runs of ``dags/engine_runs.py``: deadlines, retries, partial failure.

The DAG runs twice: in ``airflow dags test`` (triggers inline) and under a real scheduler,
triggerer and LocalExecutor (the deferred wait in a separate triggerer; ``execution_timeout``
enforced by a real worker). Each run holds the three proofs; each test asserts the task states
and tries, the log, and the API calls the simulator recorded for the task's own batch.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import dataclass
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
from tests.integration.reliability.harness import clone_home, task_logs

BATCH = "/api/v6/video/batch"
DAG_ID = "engine_runs"
DAG_FILE = TEST_DAGS / "engine_runs.py"


@dataclass
class Run:
    result: DagRunResult
    logs: dict[str, str]
    tag: str
    store: Path


def batch_posts(sim: Simulator, text: str) -> list[dict[str, Any]]:
    """Batch submits whose entries' prompts contain ``text``."""
    return [
        r
        for r in sim.requests()
        if r["path"] == BATCH and text in json.dumps((r.get("body") or {}).get("requests"))
    ]


def _dags_test(sim: Simulator, home: Path, store: Path, tag: str) -> tuple[DagRunResult, dict[str, str]]:
    result = run_dag_test(
        home,
        DAG_FILE,
        DAG_ID,
        sim_url=sim.url,
        conf={"tag": tag},
        env={"ENGINE_RUNS_STORE_DIR": str(store)},
        timeout=300,
    )
    return result, task_logs(result.output)


def _scheduler(sim: Simulator, home: Path, store: Path, tag: str) -> tuple[DagRunResult, dict[str, str]]:
    """The same DAG under a real scheduler, triggerer and LocalExecutor (a real worker-side timeout)."""
    (home / "dags" / DAG_FILE.name).symlink_to(DAG_FILE)
    env = live_env(home, sim.url, api_port=free_port(), parallelism=4, ENGINE_RUNS_STORE_DIR=str(store))
    with AirflowComponents(home, env) as af:
        af.start("api-server", "dag-processor", "scheduler", "triggerer")
        af.wait_until(
            "the DAG to be parsed", lambda: af.query("SELECT 1 FROM dag WHERE dag_id=?", DAG_ID), 120
        )
        # a home cloned after other tests' ``dags test`` runs holds the DAG paused (created so):
        # a run triggered then would stay queued
        unpaused = af.airflow("dags", "unpause", DAG_ID)
        assert unpaused.returncode == 0, unpaused.stdout + unpaused.stderr
        triggered = af.airflow("dags", "trigger", DAG_ID, "-c", json.dumps({"tag": tag}))
        assert triggered.returncode == 0, triggered.stdout + triggered.stderr
        run_id = af.wait_until(
            "the DAG run", lambda: af.query("SELECT run_id FROM dag_run WHERE dag_id=?", DAG_ID), 60
        )[0][0]
        af.wait_until(
            "the DAG run to finish",
            lambda: af.query(
                "SELECT state FROM dag_run WHERE run_id=? AND state IN ('success','failed')", run_id
            ),
            300,
        )
    with sqlite3.connect(home / "airflow.db") as db:
        rows = db.execute(
            "SELECT task_id, map_index, state FROM task_instance WHERE dag_id=? AND run_id=?",
            (DAG_ID, run_id),
        ).fetchall()
    states = {t if m < 0 else f"{t}[{m}]": s for t, m, s in rows}
    logs = {}
    for task in {t for t, _, _ in rows}:
        files = sorted((home / "logs" / f"dag_id={DAG_ID}").rglob(f"task_id={task}/**/*.log"))
        files += sorted((home / "logs" / f"dag_id={DAG_ID}").rglob(f"task_id={task}/*.log"))
        logs[task] = "\n".join(p.read_text(errors="replace") for p in dict.fromkeys(files))
    return DagRunResult(DAG_ID, run_id, 0, "", home, states), logs


@pytest.fixture(scope="module", params=["dags_test", "scheduler"])
def engine_run(
    request: pytest.FixtureRequest,
    sim: Simulator,
    airflow_home: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Run:
    base = tmp_path_factory.mktemp(f"engine_runs_{request.param}")
    home = clone_home(airflow_home, base / "home")
    store = base / "store"
    store.mkdir()
    tag = f"t{uuid.uuid4().hex[:10]}"
    runner = _dags_test if request.param == "dags_test" else _scheduler
    result, logs = runner(sim, home, store, tag)
    return Run(result, logs, tag, store)


def test_a_deferred_batch_ends_at_execution_timeout(engine_run: Run) -> None:
    result = engine_run.result
    log = engine_run.logs.get("batch_deferred_timeout", "")
    result.assert_state("batch_deferred_timeout", "failed")
    assert result.tries("batch_deferred_timeout") == 1
    assert "execution_timeout" in log, log[-3000:]
    assert CANARY_KEY not in log


def test_a_batch_retried_after_a_worker_timeout_reconnects_and_finishes(
    sim: Simulator, engine_run: Run
) -> None:
    result, tag = engine_run.result, engine_run.tag
    task = "batch_retry_after_timeout"
    result.assert_state(task, "success")
    # try 1 is killed at 8 s; try 2 reconnects and polls once more before its own end (the
    # videos are ready 14 s after the submit, the API's ETA says 60 s)
    assert result.tries(task) == 2, engine_run.logs.get(task, "")[-4000:]
    posts = batch_posts(sim, f"slow 0 {tag}")
    assert len(posts) == 1, posts  # one paid call, reconnected to by the retry
    urls = result.xcom(task)
    assert isinstance(urls, list)
    assert len(urls) == 3
    assert all(urls)
    assert [str(i) for i in result.xcom(task, "batch_ids")] == [str(posts[0]["job_id"])]


def test_readme_partial_failure_pattern_stores_two_of_three(sim: Simulator, engine_run: Run) -> None:
    result, tag, store = engine_run.result, engine_run.tag, engine_run.store
    result.assert_state("videos", "success")
    with sqlite3.connect(result.home / "airflow.db") as db:
        rows = db.execute(
            "SELECT task_id, map_index, state FROM task_instance WHERE dag_id=? AND run_id=?",
            (result.dag_id, result.run_id),
        ).fetchall()
    stores = sorted((m, s) for t, m, s in rows if t == "store")
    assert [s for _, s in stores] == ["success", "success"], rows  # one copy task per video
    failed = [(t, m) for t, m, s in rows if s in ("failed", "upstream_failed")]
    assert failed == [("batch_deferred_timeout", -1)], rows  # nothing of the pattern failed
    files = sorted(p.name for p in store.rglob("*.mp4"))
    assert len(files) == 2, files
    assert len(batch_posts(sim, f"first {tag}")) == 1
