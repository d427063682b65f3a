"""Key-leak scan: after a full run of every example DAG and of ``dags/faults_leak.py`` under a real
scheduler, triggerer, dag-processor and LocalExecutor, the canary key appears nowhere.

Scanned: every file under AIRFLOW_HOME (task logs, trigger logs, the components' own logs,
``airflow.cfg``, the SQLite file and its journals as raw bytes), every cell of every table of
the metadata DB after zlib and Fernet decoding (XComs, rendered template fields, serialized
DAGs, task state, event payloads in ``next_kwargs``...), every trigger row seen while tasks were
deferred (kwargs decrypted with the run's Fernet key), the captured CLI output, and the
simulator's own ``-v`` log and request log. Each in plain, base64 and hex form.

The runs cover all the ways of waiting (deferrable operator, mapped deferrable operator, sync
operator, v7 deferred operator, sensor in poke, reschedule and deferrable mode), a failed job, a
try that times out and is retried (it reconnects), and a key ModelsLab refuses. The key must
also reach ModelsLab: the simulator logs only a fingerprint of the key it received in each
request body, which must match; never in a header or the query string. A ``fetch_url`` on
another origin is ignored: a second simulator there must receive no request at all.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from modelslab_provider.simulator import Simulator
from modelslab_provider.simulator.state import fingerprint
from tests.integration.airflow_run import (
    CANARY_KEY,
    EXAMPLE_DAGS,
    TEST_DAGS,
    AirflowComponents,
    free_port,
    live_env,
    migrate,
)
from tests.integration.reliability.harness import PYTHONPATH
from tests.integration.reliability.leakscan import LeakScanner, encoded_forms
from tests.integration.reliability.simproc import SimProcess

REFUSED_KEY = "invalid-" + CANARY_KEY  # refused by the simulator; contains the canary as well
TRIGGER_CLASSPATH = "modelslab_provider.triggers.video.VideoFetchTrigger"
NEXT_KWARGS_SQL = "SELECT next_kwargs FROM task_instance WHERE next_kwargs IS NOT NULL"
FINISHED_SQL = "SELECT 1 FROM dag_run WHERE state IN ('success', 'failed')"
TRIES_SQL = "SELECT task_id, try_number FROM task_instance WHERE dag_id='faults_leak' AND map_index=-1"
EXPECTED = {
    "example_modelslab_text_to_video": {"generate": "success", "store": "success"},
    "example_modelslab_image_to_video_sensor": {"submit": "success", "wait": "success", "store": "success"},
    "example_modelslab_batch_mapped": {"generate": "success", "store": "success", "summarise": "success"},
    "example_modelslab_sensor_external_request": {"wait": "success", "store": "success"},
    "faults_leak": {
        "submit": "success",
        "poke_sensor": "success",
        "failed_sensor": "failed",
        "other_origin_poke": "success",
        "other_origin_deferred": "success",
        "sync_op": "success",
        "v7_deferred_op": "success",
        "retried_op": "success",
        "refused_key": "failed",
    },
}


class DbWatcher(threading.Thread):
    """Copy every trigger row and every non-empty ``next_kwargs`` seen while the runs go on."""

    def __init__(self, db: Path) -> None:
        super().__init__(name="leak-db-watcher", daemon=True)
        self.db = db
        self.triggers: dict[int, tuple[str, str]] = {}
        self.next_kwargs: set[str] = set()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                with sqlite3.connect(self.db, timeout=5) as db:
                    for tid, classpath, kwargs in db.execute("SELECT id, classpath, kwargs FROM trigger"):
                        self.triggers[tid] = (classpath, str(kwargs))
                    for (kwargs,) in db.execute(
                        "SELECT next_kwargs FROM task_instance WHERE next_kwargs IS NOT NULL"
                    ):
                        self.next_kwargs.add(str(kwargs))
            except sqlite3.Error:
                pass
            time.sleep(0.1)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)


def _link(home: Path) -> None:
    for path in [*sorted(EXAMPLE_DAGS.glob("*.py")), TEST_DAGS / "faults_leak.py"]:
        (home / "dags" / path.name).symlink_to(path)


def _states(af: AirflowComponents, dag_id: str) -> dict[str, set[str]]:
    states: dict[str, set[str]] = {}
    for task, state in af.query("SELECT task_id, state FROM task_instance WHERE dag_id=?", dag_id):
        states.setdefault(task, set()).add(state)
    return states


@pytest.fixture(scope="module")
def leak_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """All the runs, then everything needed to scan: home, Fernet key, simulator logs, outputs."""
    from cryptography.fernet import Fernet

    base = tmp_path_factory.mktemp("key_leak")
    home = base / "airflow"
    migrate(home)
    _link(home)
    fernet_key = Fernet.generate_key()
    videos = base / "videos"
    outputs: list[str] = []
    with (
        Simulator(port=0) as other_origin,
        SimProcess(base / "simulator.log", key=CANARY_KEY) as sim,
    ):
        refused = {
            "conn_type": "modelslab",
            "password": REFUSED_KEY,
            "host": sim.url,
            "extra": {"timeout": 5},
        }
        env = live_env(
            home,
            sim.url,
            api_port=free_port(),
            parallelism=6,
            AIRFLOW__CORE__FERNET_KEY=fernet_key.decode(),
            AIRFLOW_CONN_MODELSLAB_REFUSED=json.dumps(refused),
            AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG="16",
            PYTHONPATH=PYTHONPATH,
        )
        # a request made outside Airflow, for the external-request example
        outside = {"key": CANARY_KEY, "prompt": "leak scan outside [sim:polls=2 eta=1]"}
        external_id = str(
            requests.post(f"{sim.url}/api/v6/video/text2video", json=outside, timeout=10).json()["id"]
        )
        confs = {
            "example_modelslab_text_to_video": {
                "prompt": "leak scan fox [sim:duration=2 eta=1]",
                "destination": f"file://{videos}/t2v/",
            },
            "example_modelslab_image_to_video_sensor": {
                "image_url": "https://images.example/cat.png",
                "prompt": "leak scan cat [sim:polls=2 eta=1]",
                "destination": f"file://{videos}/i2v/",
            },
            "example_modelslab_batch_mapped": {
                "prompts": [f"leak scan shot {i} [sim:duration=2 eta=1]" for i in range(2)],
                "destination": f"file://{videos}/batch/",
            },
            "example_modelslab_sensor_external_request": {
                "request_id": external_id,
                "destination": f"file://{videos}/external/",
            },
            "faults_leak": {"other_origin": other_origin.url},
        }
        watcher = DbWatcher(home / "airflow.db")
        with AirflowComponents(home, env) as af:
            af.start("api-server", "dag-processor", "scheduler", "triggerer")
            af.wait_until(
                "every DAG to be parsed",
                lambda: len(af.query("SELECT dag_id FROM dag WHERE is_stale = 0")) >= len(confs),
                180,
            )
            watcher.start()
            for dag_id, conf in confs.items():
                done = af.airflow("dags", "trigger", dag_id, "-c", json.dumps(conf))
                outputs.append(done.stdout + done.stderr)
                assert done.returncode == 0, outputs[-1]
            af.wait_until(
                "every run to finish",
                lambda: len(af.query(FINISHED_SQL)) == len(confs),
                300,
            )
            watcher.stop()
            states = {dag_id: _states(af, dag_id) for dag_id in confs}
            tries = dict(af.query(TRIES_SQL))
            listed = af.airflow("tasks", "states-for-dag-run", "faults_leak", _run_id(af, "faults_leak"))
            outputs.append(listed.stdout + listed.stderr)
            logs_tail = af.logs_tail()
        sim_requests = sim.all_requests()
        other_requests = other_origin.requests()
    return {
        "home": home,
        "fernet_key": fernet_key,
        "sim_log": base / "simulator.log",
        "sim_requests": sim_requests,
        "other_requests": other_requests,
        "outputs": outputs,
        "states": states,
        "tries": tries,
        "watcher": watcher,
        "logs_tail": logs_tail,
        "videos": videos,
    }


def _run_id(af: AirflowComponents, dag_id: str) -> str:
    return str(af.query("SELECT run_id FROM dag_run WHERE dag_id=?", dag_id)[0][0])


def test_runs_cover_every_path(leak_run: dict[str, Any]) -> None:
    """The scan is only as good as the runs: every expected outcome happened, incl. a retry."""
    for dag_id, expected in EXPECTED.items():
        got = leak_run["states"][dag_id]
        for task, state in expected.items():
            assert got.get(task) == {state}, f"{dag_id}.{task}: {got.get(task)}\n{leak_run['logs_tail']}"
    assert leak_run["tries"]["retried_op"] == 2  # timed out once, then reconnected
    assert leak_run["tries"]["refused_key"] == 1  # a refused key fails without retry
    assert len(list(leak_run["videos"].rglob("*.mp4"))) >= 5  # the examples really stored files


def test_canary_appears_nowhere(leak_run: dict[str, Any]) -> None:
    home: Path = leak_run["home"]
    scan = LeakScanner(CANARY_KEY, fernet_key=leak_run["fernet_key"])
    scan.tree(home)  # logs (task, trigger, components), airflow.cfg, the DB file as raw bytes
    scan.database(home / "airflow.db")
    scan.file(leak_run["sim_log"], "simulator -v log")
    scan.text(json.dumps(leak_run["sim_requests"]), "simulator request log")
    for number, output in enumerate(leak_run["outputs"]):
        scan.text(output, f"CLI output {number}")
    watcher: DbWatcher = leak_run["watcher"]
    for tid, (_classpath, kwargs) in watcher.triggers.items():
        scan.value(kwargs, f"trigger {tid} kwargs")
    for kwargs in watcher.next_kwargs:
        scan.value(kwargs, "task_instance.next_kwargs")
    print(scan.report(), dict(scan.rows))
    assert scan.hits == [], "\n".join(str(h) for h in scan.hits[:50])
    # and the scan did look at real content
    assert scan.scanned["files"] > 20
    assert scan.scanned["db_cells"] > 1000
    for table in ("xcom", "rendered_task_instance_fields", "serialized_dag", "task_instance", "log"):
        assert scan.rows[table] > 0, f"nothing scanned in {table}: {dict(scan.rows)}"


def test_trigger_rows_hold_no_secret(leak_run: dict[str, Any]) -> None:
    """Every trigger row seen while deferred: ours, readable, no key-like field.

    Airflow 3.3's execution API stores trigger kwargs as plain JSON unless the client encrypted
    them (the task SDK does not), so nothing but the provider keeps a secret out of this table.
    Fernet-encrypted rows (other Airflow versions) are decrypted with the run's key first.
    """
    watcher: DbWatcher = leak_run["watcher"]
    scan = LeakScanner(CANARY_KEY, fernet_key=leak_run["fernet_key"])
    ours = {tid: kw for tid, (classpath, kw) in watcher.triggers.items() if classpath == TRIGGER_CLASSPATH}
    # of: text-to-video, 2 mapped batch, external request, v7 operator, failed + other-origin sensors
    assert len(ours) >= 5, watcher.triggers
    for tid, stored in ours.items():
        text = stored if stored.startswith("{") else scan.fernet_decrypt(stored)
        assert text is not None, f"trigger {tid} kwargs are neither JSON nor encrypted with the run's key"
        kwargs = json.loads(text)
        assert kwargs["request_id"], kwargs
        assert CANARY_KEY not in text
        assert not {k.lower() for k in kwargs} & {"key", "api_key", "password", "token"}, kwargs
    assert watcher.next_kwargs, "no event payload was seen in next_kwargs"
    for payload in watcher.next_kwargs:
        assert CANARY_KEY not in payload


def test_key_sent_only_in_the_body_to_the_configured_origin(leak_run: dict[str, Any]) -> None:
    api = [e for e in leak_run["sim_requests"] if e["path"].startswith("/api/")]
    assert len(api) > 30
    allowed = {fingerprint(CANARY_KEY), fingerprint(REFUSED_KEY)}
    for entry in api:
        assert entry["key_present"], entry  # the key WAS sent, in the JSON body
        assert entry["key_fingerprint"] in allowed, entry
        assert not entry["key_in_query"], entry
        assert not entry["key_in_headers"], entry
        assert "key" not in entry["query"], entry
    assert any(e["key_fingerprint"] == fingerprint(REFUSED_KEY) for e in api)
    # the sensors told to poll another origin polled the connection's origin instead
    assert leak_run["other_requests"] == []


def test_scanner_finds_a_planted_canary(tmp_path: Path) -> None:
    """Positive control: the scanner sees the canary in each form a leak could take."""
    import base64
    import zlib

    from cryptography.fernet import Fernet

    key = Fernet.generate_key()
    db = tmp_path / "planted.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (a TEXT, b BLOB, c TEXT, d TEXT)")
        conn.execute(
            "INSERT INTO t VALUES (?, ?, ?, ?)",
            (
                Fernet(key).encrypt(json.dumps({"key": CANARY_KEY}).encode()).decode(),
                zlib.compress(f'{{"password": "{CANARY_KEY}"}}'.encode()),
                "Authorization: Basic " + base64.b64encode(f"user:{CANARY_KEY}".encode()).decode(),
                f"?key={CANARY_KEY.encode().hex()}",
            ),
        )
    scan = LeakScanner(CANARY_KEY, fernet_key=key)
    scan.database(db)
    assert any("t.a" in h.where and "[fernet]" in h.where for h in scan.hits)
    assert any("t.b" in h.where and "zlib" in h.where for h in scan.hits)
    assert any("t.c" in h.where and h.form.startswith("base64") for h in scan.hits)
    assert any("t.d" in h.where and h.form == "hex" for h in scan.hits)
    assert set(encoded_forms(CANARY_KEY)) >= {"plain", "hex", "base64+0", "base64url+2"}
