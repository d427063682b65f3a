"""The fault matrix (``tests/FAULT_MATRIX.md``): every fault against every way of waiting.

Rows, columns, scenarios and expectations live in ``reliability/matrix.py``. The cells run as
tasks of a few DAGs (``dags/faults_matrix.py``), one ``airflow dags test`` per column, all at
once in separate throwaway AIRFLOW_HOMEs (tasks of one run go one by one; triggers run inline).
The "simulator restarted" row runs against a simulator process the test kills and restarts;
the "triggerer restarted" row needs a real scheduler and triggerer (``test_fault_matrix_triggerer.py``).
Each cell asserts the task's outcome on its first try, the log line that shows how the fault
was handled, and the exact (or bounded) number of API calls the simulator saw for its job.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from modelslab_provider.simulator import Simulator
from tests.integration.airflow_run import (
    CANARY_KEY,
    TEST_DAGS,
    DagRunResult,
    run_dag_test,
)
from tests.integration.reliability.harness import (
    clone_home,
    connection_env,
    fetches_by_job,
    submits_with,
    task_logs,
)
from tests.integration.reliability.matrix import (
    COLUMN,
    CONNECTION_EXTRA,
    DAG_SPECS,
    DAGS_TEST,
    FAULT,
    SIM_RESTART,
    TABLE_FILE,
    cells,
    render,
    store_task_id,
    task_id,
)
from tests.integration.reliability.simproc import SimProcess

DAG_FILE = TEST_DAGS / "faults_matrix.py"
BATCH_PATH = "/api/v6/video/batch"
SAMPLE = resources.files("modelslab_provider.simulator").joinpath("data", "sample.mp4").read_bytes()
#: how long the simulator stays down in the restart row
DOWN_S = 5.0


@dataclass
class Run:
    """One DAG run of the matrix and what its simulator saw."""

    result: DagRunResult
    logs: dict[str, str]
    requests: list[dict[str, Any]]
    stats: dict[str, Any]
    sim_url: str
    store_dir: Path
    #: request logs per simulator incarnation (restart row only)
    incarnations: list[list[dict[str, Any]]] = field(default_factory=list)
    restarted: dict[int, float] = field(default_factory=dict)


class RestartController(threading.Thread):
    """Kill and restart the simulator right after the first fetch of a job not yet through an outage.

    Every job fetched by the killed process counts as having met the outage.
    """

    def __init__(self, sim: SimProcess, down: float) -> None:
        super().__init__(name="sim-restart-controller", daemon=True)
        self.sim = sim
        self.down = down
        self.restarted: dict[int, float] = {}
        self.error: BaseException | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        since = 0
        try:
            while not self._stop_event.is_set():
                for entry in self.sim.requests(since):
                    since = entry["seq"]
                    job = entry.get("job_id")
                    if "/fetch/" in entry["path"] and isinstance(job, int) and job not in self.restarted:
                        killed_at = time.time()
                        self.sim.restart(self.down)
                        for seen in fetches_by_job(self.sim.incarnations[-1]):
                            self.restarted.setdefault(seen, killed_at)
                        since = 0  # a new process, a new request log
                        break
                time.sleep(0.05)
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=30)


def _run(spec_dag_id: str, home: Path, sim_url: str, store_dir: Path) -> DagRunResult:
    env = connection_env(sim_url, **CONNECTION_EXTRA)
    env["FAULTS_STORE_DIR"] = str(store_dir)
    return run_dag_test(
        home, DAG_FILE, spec_dag_id, sim_url=sim_url, env=env, timeout=600, keep_on_timeout=True
    )


@pytest.fixture(scope="module")
def matrix(sim: Simulator, airflow_home: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """Run every ``dags test`` DAG of the matrix at once; return each run with its API traffic."""
    base = tmp_path_factory.mktemp("fault_matrix")
    specs = [s for s in DAG_SPECS if {FAULT[f].runner for f in s.faults} & {DAGS_TEST, SIM_RESTART}]
    homes = {s.dag_id: clone_home(airflow_home, base / s.dag_id) for s in specs}
    stores = {s.dag_id: base / s.dag_id / "store" for s in specs}
    seq_before = sim.requests()[-1]["seq"] if sim.requests() else 0

    restart_sim = SimProcess(base / "restart-sim.log", key=CANARY_KEY).start()
    controller = RestartController(restart_sim, DOWN_S)
    controller.start()
    try:
        with ThreadPoolExecutor(max_workers=len(specs)) as pool:
            futures = {
                s.dag_id: pool.submit(
                    _run,
                    s.dag_id,
                    homes[s.dag_id],
                    restart_sim.url if s.dag_id == "faults_sim_restart" else sim.url,
                    stores[s.dag_id],
                )
                for s in specs
            }
            results = {dag_id: f.result() for dag_id, f in futures.items()}
    finally:
        controller.stop()
        restart_sim.stop()
    assert controller.error is None, controller.error

    shared_requests = sim.requests(seq_before)
    shared_stats = sim.stats()
    runs = {}
    for dag_id, result in results.items():
        if dag_id == "faults_sim_restart":
            entries = [e for log in restart_sim.incarnations for e in log]
            runs[dag_id] = Run(
                result,
                task_logs(result.output),
                entries,
                {},
                restart_sim.url,
                stores[dag_id],
                incarnations=restart_sim.incarnations,
                restarted=controller.restarted,
            )
        else:
            runs[dag_id] = Run(
                result, task_logs(result.output), shared_requests, shared_stats, sim.url, stores[dag_id]
            )
    return runs


def _job_id(run: Run, fault: str, column: str) -> int:
    tid = task_id(fault, column)
    if COLUMN[column].kind == "batch":
        ids = run.result.xcom(tid, "batch_ids")
        assert isinstance(ids, list), f"{tid} pushed no batch_ids\n{run.logs.get(tid, '')[-4000:]}"
        assert len(ids) == 1, ids
        return int(ids[0])
    if COLUMN[column].kind == "sensor":
        ids = run.result.xcom("submit")
        assert isinstance(ids, dict), run.result.output[-4000:]
        return int(ids[tid])
    rid = run.result.xcom(tid, "request_id")
    assert rid is not None, f"{tid} pushed no request_id\n{run.logs.get(tid, '')[-4000:]}"
    return int(rid)


MATRIX_CELLS = [c for c in cells() if FAULT[c[1]].runner in (DAGS_TEST, SIM_RESTART)]


@pytest.mark.parametrize(
    ("dag_id", "fault", "column"), MATRIX_CELLS, ids=[f"{f}-{c}" for _, f, c in MATRIX_CELLS]
)
def test_cell(matrix: dict[str, Run], dag_id: str, fault: str, column: str) -> None:
    run = matrix[dag_id]
    spec = FAULT[fault]
    tid = task_id(fault, column)
    log = run.logs.get(tid, "")
    context = f"\n--- {tid} log tail ---\n{log[-5000:]}"

    # outcome, on the first try: faults never cost a task retry, failures skip theirs
    run.result.assert_state(tid, spec.outcome)
    assert run.result.tries(tid) == 1, context
    expected = spec.message_for(column)
    assert any(m in log for m in expected), f"none of {expected} in the log{context}"
    urls = run.result.xcom(tid)
    batch = COLUMN[column].kind == "batch"
    if spec.outcome == "failed":
        if not spec.retryable:
            assert "AirflowFailException" in log, context
        assert urls is None
    else:
        assert isinstance(urls, list), urls
        assert urls
        flat = [u for item in urls if item is not None for u in item] if batch else urls
        assert flat
        assert all(isinstance(u, str) and u.startswith(run.sim_url + "/") for u in flat), urls

    if spec.on_submit:
        _check_ambiguous_submit(run, dag_id, tid, log, context, batch=batch)
        return
    if spec.submits == 0:
        assert not _submits(run.requests, dag_id, tid, batch), context
        return

    # API calls: the job's fetches, one paid submit, nothing after the terminal answer
    job = _job_id(run, fault, column)
    fetches = fetches_by_job(run.requests)[job]
    assert spec.fetches_ok(fetches), f"{fetches} fetches of job {job}, expected {spec.fetches}{context}"
    submits = [
        e for e in _submits(run.requests, dag_id, tid, batch) if e["status"] == 200 and e.get("job_id")
    ]
    assert len(submits) == spec.submits, submits
    if batch:
        _check_batch(run, fault, column, context)
    elif run.stats:
        assert str(job) not in run.stats["fetches_after_terminal_per_job"], run.stats

    if spec.runner == SIM_RESTART:
        _check_restart(run, job, context)
    if spec.files is not None:
        _check_store(run, fault, column, urls)
    assert CANARY_KEY not in log


def _submits(entries: list[dict[str, Any]], dag_id: str, tid: str, batch: bool) -> list[dict[str, Any]]:
    """The cell's submit requests: single ones by prompt, batch ones by their entries' prompts."""
    if not batch:
        return submits_with(entries, f"{dag_id}/{tid} ")
    return [
        e
        for e in entries
        if e.get("path") == BATCH_PATH
        and isinstance(e.get("body"), dict)
        and any(f"{dag_id}/{tid} " in str(r.get("prompt", "")) for r in e["body"].get("requests") or [])
    ]


def _check_batch(run: Run, fault: str, column: str, context: str) -> None:
    """Entry outcomes in input order; no single fetch of an entry; the docs' store pattern."""
    spec = FAULT[fault]
    tid = task_id(fault, column)
    results = run.result.xcom(tid, "results")
    if not spec.statuses and results is None:  # the wait itself failed: no entry outcomes
        return
    assert isinstance(results, list), context
    assert [r["index"] for r in results] == list(range(len(results)))
    if spec.statuses:
        assert [r["status"] for r in results] == list(spec.statuses), results
    entry_ids = {str(r.get("request_id")) for r in results}
    singles = [e for e in run.requests if e["path"].startswith("/api/v6/video/fetch/")]
    assert not [e for e in singles if str(e.get("job_id")) in entry_ids], "a batch entry was fetched alone"
    if spec.partial_store:
        store_id = store_task_id(fault, column)
        copies = {k: v for k, v in run.result.states.items() if k.startswith(store_id + "[")}
        ok = sum(s == "success" for s in results_status(results))
        assert sorted(copies.values()) == ["success"] * ok, (copies, context)
        assert not [
            k
            for k, v in run.result.states.items()
            if v in ("failed", "upstream_failed") and (k == tid or k.startswith(store_id))
        ], run.result.states
        stored = list((run.store_dir / run.result.dag_id / "partial").rglob("*.mp4"))
        assert len(stored) == ok, stored


def results_status(results: list[dict[str, Any]]) -> list[str]:
    return [str(r["status"]) for r in results]


def _check_ambiguous_submit(
    run: Run, dag_id: str, tid: str, log: str, context: str, *, batch: bool = False
) -> None:
    """One submit, which queued a job the task never heard of; no fetch; the track_id(s) named."""
    [submit] = _submits(run.requests, dag_id, tid, batch)
    assert submit["status"] is None or submit["status"] >= 500, submit  # dropped, or a 5xx page
    job = submit.get("job_id")
    assert job is not None, f"the simulator queued no job for {tid}: {submit}"
    assert fetches_by_job(run.requests)[job] == 0
    if batch:
        assert run.result.xcom(tid, "batch_ids") is None
        track_ids = [r["track_id"] for r in submit["body"]["requests"]]
        assert track_ids
        assert all(t in log for t in track_ids), context
        assert CANARY_KEY not in log
        return
    assert run.result.xcom(tid, "request_id") is None
    track_id = run.result.xcom(tid, "track_id")
    assert isinstance(track_id, str), context
    assert track_id
    assert submit["body"]["track_id"] == track_id
    assert f"track_id {track_id}" in log, context
    assert CANARY_KEY not in log


def _check_restart(run: Run, job: int, context: str) -> None:
    """1 fetch on the killed simulator, then the wait crossed the outage: 2 on the restarted one."""
    assert job in run.restarted, f"job {job} was never restarted{context}"
    per_incarnation = [fetches_by_job(log)[job] for log in run.incarnations]
    first = next(i for i, n in enumerate(per_incarnation) if n)
    assert per_incarnation[first] == 1, (per_incarnation, context)
    assert per_incarnation[first + 1] == 2, (per_incarnation, context)
    assert sum(per_incarnation) == 3


def _check_store(run: Run, fault: str, column: str, urls: list[str]) -> None:
    """The copy met the 404 first, retried, and stored the whole file."""
    spec = FAULT[fault]
    assert spec.files is not None
    store_id = store_task_id(fault, column)
    run.result.assert_state(store_id, "success")
    assert run.result.tries(store_id) == 1
    paths = {u.removeprefix(run.sim_url) for u in urls}
    gets = [e for e in run.requests if e["method"] == "GET" and e["path"] in paths]
    low, high = spec.files
    assert low <= len(gets) <= high, [(e["path"], e["status"]) for e in gets]
    assert gets[0]["status"] == 404, [e["status"] for e in gets]
    assert gets[-1]["status"] == 200, [e["status"] for e in gets]
    assert spec.store_message in run.logs.get(store_id, "")
    stored = run.result.xcom(store_id)
    assert isinstance(stored, list), stored
    assert len(stored) == len(urls), stored
    for uri in stored:
        assert Path(uri.removeprefix("file://")).read_bytes() == SAMPLE


def test_table_is_up_to_date() -> None:
    """``tests/FAULT_MATRIX.md`` is generated from the spec; regenerate it when the spec changes."""
    assert TABLE_FILE.read_text() == render(), (
        "tests/FAULT_MATRIX.md is stale: run `python -m tests.integration.reliability.matrix`"
    )
