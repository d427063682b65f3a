"""Issue 22 in a real ``airflow dags test`` run (``dags/engine_runs.py``): deadlines, retries, partial fails.

One run holds the three proofs (tasks run one after another); each asserts the task states and
tries, the log, and the API calls the simulator recorded for the task's own batch.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from modelslab_provider.simulator import Simulator
from tests.integration.airflow_run import CANARY_KEY, TEST_DAGS, DagRunResult, run_dag_test
from tests.integration.reliability.harness import clone_home, task_logs

BATCH = "/api/v6/video/batch"


def batch_posts(sim: Simulator, text: str) -> list[dict[str, Any]]:
    """Batch submits whose entries' prompts contain ``text``."""
    return [
        r
        for r in sim.requests()
        if r["path"] == BATCH and text in json.dumps((r.get("body") or {}).get("requests"))
    ]


@pytest.fixture(scope="module")
def engine_run(
    sim: Simulator, airflow_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[DagRunResult, str, Path]:
    base = tmp_path_factory.mktemp("engine_runs")
    home = clone_home(airflow_home, base / "home")
    store = base / "store"
    store.mkdir()
    tag = f"t{uuid.uuid4().hex[:10]}"
    result = run_dag_test(
        home,
        TEST_DAGS / "engine_runs.py",
        "engine_runs",
        sim_url=sim.url,
        conf={"tag": tag},
        env={"ENGINE_RUNS_STORE_DIR": str(store)},
        timeout=300,
    )
    return result, tag, store


def test_a_deferred_batch_ends_at_execution_timeout(engine_run: tuple[DagRunResult, str, Path]) -> None:
    result, _, _ = engine_run
    log = task_logs(result.output).get("batch_deferred_timeout", "")
    result.assert_state("batch_deferred_timeout", "failed")
    assert result.tries("batch_deferred_timeout") == 1
    assert "execution_timeout" in log, log[-3000:]
    assert CANARY_KEY not in log


def test_a_batch_retried_after_a_worker_timeout_reconnects_and_finishes(
    sim: Simulator, engine_run: tuple[DagRunResult, str, Path]
) -> None:
    result, tag, _ = engine_run
    task = "batch_retry_after_timeout"
    result.assert_state(task, "success")
    # try 1 is killed at 8 s; try 2 reconnects and polls once more before its own end (the
    # videos are ready 14 s after the submit, the API's ETA says 60 s)
    assert result.tries(task) == 2, task_logs(result.output).get(task, "")[-4000:]
    posts = batch_posts(sim, f"slow 0 {tag}")
    assert len(posts) == 1, posts  # one paid call, reconnected to by the retry
    urls = result.xcom(task)
    assert isinstance(urls, list)
    assert len(urls) == 3
    assert all(urls)
    assert [str(i) for i in result.xcom(task, "batch_ids")] == [str(posts[0]["job_id"])]


def test_readme_partial_failure_pattern_stores_two_of_three(
    sim: Simulator, engine_run: tuple[DagRunResult, str, Path]
) -> None:
    result, tag, store = engine_run
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
