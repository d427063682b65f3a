"""The "triggerer restarted" row of the fault matrix (``tests/FAULT_MATRIX.md``).

It needs what ``airflow dags test`` fakes: a real scheduler, triggerer, dag-processor and
LocalExecutor. The deferred cells (sensor, operator, batch operator) defer, are polled by the
triggerer, the triggerer is restarted (SIGTERM, as a deploy would), and the new one finishes each
wait: one submit, one event, no poll while it was down.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from modelslab_provider.simulator import Simulator
from tests.integration.airflow_run import CANARY_KEY, AirflowComponents, free_port, live_env
from tests.integration.reliability.harness import clone_home, connection_env
from tests.integration.reliability.matrix import (
    BATCH_INPUTS,
    COLUMN,
    CONNECTION_EXTRA,
    FAULT,
    TRIGGERER_RESTART,
    cells,
    task_id,
)
from tests.integration.test_fault_matrix import DAG_FILE, _submits

TI_SQL = "SELECT state, try_number, trigger_id FROM task_instance WHERE dag_id=? AND run_id=? AND task_id=?"


def _restart_triggerer(af: AirflowComponents) -> tuple[float, float]:
    """SIGTERM the triggerer (as a deploy would), start a new one (same log); (stopped, started)."""
    old = af.procs.pop("triggerer")
    os.killpg(old.pid, signal.SIGTERM)
    old.wait(timeout=60)
    stopped = time.time()
    af.start("triggerer")
    return stopped, time.time()


def _trigger_logs(home: Path, dag_id: str, task: str) -> dict[str, str]:
    """The task's trigger log files (``attempt=1.log.trigger.<triggerer job id>.log``) by name."""
    folder = home / "logs" / f"dag_id={dag_id}"
    return {
        p.name: p.read_text(errors="replace") for p in sorted(folder.rglob(f"task_id={task}/*.trigger.*.log"))
    }


@pytest.mark.parametrize("dag_id", ["faults_triggerer_restart"])
def test_triggerer_restart(dag_id: str, sim: Simulator, airflow_home: Path, tmp_path: Path) -> None:
    """Deferred waits survive a triggerer restart: one submit, one event, no fetch after success."""
    home = clone_home(airflow_home, tmp_path / "home")
    (home / "dags" / DAG_FILE.name).symlink_to(DAG_FILE)
    env = live_env(
        home, sim.url, api_port=free_port(), parallelism=4, **connection_env(sim.url, **CONNECTION_EXTRA)
    )
    cells_here = [(f, c) for _, f, c in cells() if FAULT[f].runner == TRIGGERER_RESTART]
    tids = [task_id(f, c) for f, c in cells_here]
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

        def ti(task: str) -> tuple[Any, ...]:
            rows = af.query(TI_SQL, dag_id, run_id, task)
            return rows[0] if rows else (None, None, None)

        def xcom(task: str, key: str) -> Any:
            rows = af.query(
                "SELECT value FROM xcom WHERE dag_id=? AND run_id=? AND task_id=? AND key=?",
                dag_id,
                run_id,
                task,
                key,
            )
            return json.loads(rows[0][0]) if rows else None

        def job_of(fault: str, column: str) -> int | None:
            if COLUMN[column].kind == "batch":
                ids = xcom(task_id(fault, column), "batch_ids")
                return int(ids[0]) if ids else None
            if COLUMN[column].kind == "sensor":
                ids = xcom("submit", "return_value")
                return int(ids[task_id(fault, column)]) if ids else None
            rid = xcom(task_id(fault, column), "request_id")
            return int(rid) if rid else None

        # both waits are deferred, in the triggerer, and each job has been polled from there
        af.wait_until("both tasks to defer", lambda: all(ti(t)[0] == "deferred" for t in tids), 180)
        found = {task_id(f, c): job_of(f, c) for f, c in cells_here}
        jobs = {t: j for t, j in found.items() if j is not None}
        assert len(jobs) == len(found), found
        deferred_at = time.time()
        af.wait_until(
            "a poll of each job from the triggerer",
            lambda: all(any(e["ts"] > deferred_at for e in _fetches(sim, j)) for j in jobs.values()),
            60,
        )
        triggerer_before = af.query("SELECT DISTINCT triggerer_id FROM trigger")
        stopped, started = _restart_triggerer(af)
        af.wait_until(
            "the new triggerer to poll each job",
            lambda: all(any(e["ts"] > started for e in _fetches(sim, j)) for j in jobs.values()),
            180,
        )
        triggerer_after = af.query("SELECT DISTINCT triggerer_id FROM trigger")
        batches = sim.batches()
        for job in jobs.values():
            for entry in batches[str(job)]["job_ids"] if str(job) in batches else [job]:
                assert sim.complete(entry)
        finished = af.wait_until(
            "the DAG run to finish",
            lambda: af.query(
                "SELECT state FROM dag_run WHERE run_id=? AND state IN ('success','failed')", run_id
            ),
            180,
        )
        states = {t: ti(t) for t in tids}
        assert finished[0][0] == "success", f"{states}\n{af.logs_tail()}"
        assert not af.query("SELECT 1 FROM trigger"), "every trigger row is gone after its one event"

    triggerer_logs = af.log("triggerer")  # both triggerers' own logs
    assert triggerer_before
    assert triggerer_after
    assert set(triggerer_before).isdisjoint(triggerer_after), (triggerer_before, triggerer_after)
    stats = sim.stats()
    for (fault, column), tid in zip(cells_here, tids, strict=True):
        spec = FAULT[fault]
        job = jobs[tid]
        final = _final_ti(home, dag_id, run_id, tid)
        assert final[:2] == (spec.outcome, 1), final
        fetches = _fetches(sim, job)
        assert spec.fetches_ok(len(fetches)), (len(fetches), spec.fetches)
        assert not [e for e in fetches if stopped < e["ts"] < started], "nobody polled while it was down"
        batch = COLUMN[column].kind == "batch"
        if not batch:
            assert str(job) not in stats["fetches_after_terminal_per_job"]
        assert len(_submits(sim.requests(), dag_id, tid, batch)) == 1
        urls = _final_xcom(home, dag_id, run_id, tid)
        assert isinstance(urls, list), urls
        assert urls
        flat = [u for item in urls for u in item] if batch else urls
        assert len(flat) == (BATCH_INPUTS if batch else 1), urls
        assert all(u.startswith(sim.url + "/files/") for u in flat), urls
        # the trigger ran in both triggerers (one log file each); only the new one fired, once
        logs = _trigger_logs(home, dag_id, tid)
        assert len(logs) == 2, list(logs)
        assert all(any(m in text for m in spec.message_for(column)) for text in logs.values()), logs
        done = re.compile(r"All .* finished after \d+ rounds" if batch else f"request {job} is ready")
        ready = [name for name, text in logs.items() for _ in done.findall(text)]
        # a trigger's last lines can reach the supervisor after it closed the trigger's file;
        # Airflow then writes them to the triggerer's own log (without the task's name)
        spilled = len(done.findall(triggerer_logs))
        assert len(ready) <= 1, logs
        assert len(ready) + spilled >= 1, logs
        assert CANARY_KEY not in "".join(logs.values())


def _fetches(sim: Simulator, job: int) -> list[dict[str, Any]]:
    return [e for e in sim.requests() if "/fetch/" in e["path"] and e.get("job_id") == job]


def _final_ti(home: Path, dag_id: str, run_id: str, task: str) -> tuple[Any, ...]:
    with sqlite3.connect(home / "airflow.db") as db:
        return tuple(db.execute(TI_SQL, (dag_id, run_id, task)).fetchone())


def _final_xcom(home: Path, dag_id: str, run_id: str, task: str) -> Any:
    with sqlite3.connect(home / "airflow.db") as db:
        row = db.execute(
            "SELECT value FROM xcom WHERE dag_id=? AND run_id=? AND task_id=? AND key='return_value'",
            (dag_id, run_id, task),
        ).fetchone()
    return json.loads(row[0]) if row else None
