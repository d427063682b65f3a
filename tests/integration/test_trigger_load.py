"""Load: 200 deferred waits at once in ONE real triggerer, no lost and no duplicated events.

A real scheduler, triggerer, dag-processor and LocalExecutor on a throwaway AIRFLOW_HOME run
``dags/faults_load.py``: 200 mapped deferrable sensors, each on its own simulator job. The jobs
never finish on their own; once all 200 sensors are deferred together (200 trigger rows, one
triggerer), the test completes every job at once. Then every task must succeed on its first try
with its own job's URL, each task must defer once and be ended by its trigger (no resume on a
worker: Airflow 3.3, end_from_trigger), no trigger may report "ready" twice, the trigger table
must end empty, and the simulator must see no fetch after any success (a duplicated or re-run
trigger would poll again).
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from tests.integration.airflow_run import (
    CANARY_KEY,
    TEST_DAGS,
    AirflowComponents,
    free_port,
    live_env,
    migrate,
)
from tests.integration.reliability.simproc import SimProcess

N = 200
DAG_ID = "faults_load"
CLASSPATH = "modelslab_provider.triggers.video.VideoFetchTrigger"
READY = re.compile(r"ModelsLab request (\d+) is ready after")
DEFERRING = re.compile(r"ModelsLab request (\d+) is not ready; deferring")


def _json(value: Any) -> Any:
    """An XCom value as read from SQLite: JSON text, or a number SQLite already typed."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def _output_url(base_url: str, job: str) -> str:
    body = json.dumps({"key": CANARY_KEY}).encode()
    request = urllib.request.Request(f"{base_url}/api/v6/video/fetch/{job}", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=10) as resp:
        return str(json.loads(resp.read())["output"][0])


def test_200_concurrent_deferred_waits(tmp_path: Path) -> None:
    home = tmp_path / "airflow"
    migrate(home)
    (home / "dags" / "faults_load.py").symlink_to(TEST_DAGS / "faults_load.py")
    with SimProcess(tmp_path / "simulator.log", key=CANARY_KEY) as sim:
        env = live_env(
            home,
            sim.url,
            api_port=free_port(),
            parallelism=16,
            FAULTS_LOAD_N=str(N),
            AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG=str(N + 10),
            AIRFLOW__CORE__DEFAULT_POOL_TASK_SLOT_COUNT=str(N + 10),
            AIRFLOW__SCHEDULER__MAX_TIS_PER_QUERY="64",
            AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
        )
        with AirflowComponents(home, env) as af:
            af.start("api-server", "dag-processor", "scheduler", "triggerer")
            af.wait_until(
                "the DAG to be parsed", lambda: af.query("SELECT 1 FROM dag WHERE dag_id=?", DAG_ID), 120
            )
            started = time.monotonic()
            triggered = af.airflow("dags", "trigger", DAG_ID)
            assert triggered.returncode == 0, triggered.stdout + triggered.stderr

            def all_deferred_and_assigned() -> bool:
                deferred = af.query("SELECT COUNT(*) FROM task_instance WHERE state='deferred'")[0][0]
                assigned = af.query("SELECT COUNT(*) FROM trigger WHERE triggerer_id IS NOT NULL")[0][0]
                return bool(deferred == assigned == N)

            af.wait_until(
                f"{N} deferred sensors in the triggerer", all_deferred_and_assigned, 240, interval=1
            )
            ids = json.loads(
                af.query("SELECT value FROM xcom WHERE dag_id=? AND task_id='submit'", DAG_ID)[0][0]
            )
            assert len(ids) == len(set(ids)) == N

            # ... and the triggerer really runs them: each job is polled from there (poke + a poll)
            def all_polled() -> bool:
                per_job = sim.stats()["fetches_per_job"]
                return all(per_job.get(job, 0) >= 2 for job in ids)

            af.wait_until("a triggerer poll of every job", all_polled, 60, interval=1)
            # all N waits are live at the same time, as trigger rows owned by one triggerer
            rows = af.query("SELECT classpath, triggerer_id FROM trigger")
            assert len(rows) == N, len(rows)
            assert {r[0] for r in rows} == {CLASSPATH}
            owners = {r[1] for r in rows}
            concurrent_at = time.monotonic() - started
            completed_at = {}
            for job in ids:
                completed_at[job] = time.time()
                sim.complete(job)
            af.wait_until(
                "the run to finish",
                lambda: af.query("SELECT state FROM dag_run WHERE state IN ('success', 'failed')"),
                240,
                interval=1,
            )
            total = time.monotonic() - started
            tis = af.query("SELECT map_index, state, try_number FROM task_instance WHERE task_id='wait'")
            urls = dict(
                af.query("SELECT map_index, value FROM xcom WHERE task_id='wait' AND key='return_value'")
            )
            counted = af.query("SELECT value FROM xcom WHERE task_id='count' AND key='return_value'")
            leftover = af.query("SELECT COUNT(*) FROM trigger")[0][0]
            triggerers = af.query("SELECT COUNT(*) FROM job WHERE job_type='TriggererJob'")[0][0]
        stats = sim.stats()
        requests = sim.requests()
        outputs = [_output_url(sim.url, job) for job in ids]  # read after the counts above

    assert len(owners) == 1, owners  # one triggerer held all N
    assert triggerers == 1
    assert sorted(t[0] for t in tis) == list(range(N))
    assert {(t[1], t[2]) for t in tis} == {("success", 1)}, Counter((t[1], t[2]) for t in tis)
    assert counted
    assert _json(counted[0][0]) == N
    assert leftover == 0

    # each map index got its own job's video (no event delivered to the wrong task)
    by_index = {int(i): _json(v) for i, v in urls.items()}
    assert by_index == {i: [url] for i, url in enumerate(outputs)}

    # the simulator: N submits, no fetch after a success, every job polled again after release
    assert stats["submits"] == N
    assert stats["fetches_after_terminal"] == 0, stats["fetches_after_terminal_per_job"]
    polled_after = {
        str(e["job_id"])
        for e in requests
        if "/fetch/" in e["path"] and e["ts"] >= completed_at.get(str(e["job_id"]), float("inf"))
    }
    assert polled_after == set(ids), "a job was never polled after it was ready"

    # one deferral per task, on its own job, and no resume on a worker (the trigger ends the task
    # and writes its XComs, checked above); no trigger reported "ready" twice
    ready_in_triggers: Counter[str] = Counter()
    ready_in_tasks: Counter[str] = Counter()
    deferrals: Counter[str] = Counter()
    for path in (home / "logs" / f"dag_id={DAG_ID}").rglob("*.log"):
        if "task_id=wait" not in str(path):
            continue
        text = path.read_text(errors="replace")
        if ".trigger." in path.name:
            ready_in_triggers.update(READY.findall(text))
        else:
            ready_in_tasks.update(READY.findall(text))
            deferrals.update(DEFERRING.findall(text))
    assert not ready_in_tasks, ready_in_tasks.most_common(3)
    assert set(deferrals) == set(ids), len(deferrals)
    assert set(deferrals.values()) == {1}, deferrals.most_common(3)
    # trigger log files may miss their last lines (Airflow ships them asynchronously and closes
    # the file when the trigger ends), so these only prove that nothing fired twice
    assert ready_in_triggers
    assert set(ready_in_triggers.values()) == {1}, ready_in_triggers.most_common(3)
    print(
        f"{N} deferred at once after {concurrent_at:.0f} s; all {N} succeeded after {total:.0f} s; "
        f"{stats['fetches']} fetches, 0 after success; 1 event per trigger"
    )
