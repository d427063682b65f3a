"""Run real Airflow commands against a throwaway AIRFLOW_HOME and read the results back.

Used by every integration test: ``airflow dags test`` runs a DAG file end to end in a subprocess
(the same code path a user runs), and the outcome is read from the SQLite metadata database.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VENV_BIN = Path(sys.executable).parent
AIRFLOW = str(VENV_BIN / "airflow")
REPO = Path(__file__).resolve().parents[2]
TEST_DAGS = Path(__file__).resolve().parent / "dags"
EXAMPLE_DAGS = REPO / "dags_examples"

#: the key every integration test uses; distinctive so leak scans can look for it
CANARY_KEY = "sk-canary-7f3c9d1e5b2a4c68"


def airflow_env(home: Path, sim_url: str | None, **overrides: str) -> dict[str, str]:
    """Environment for an Airflow process on ``home`` whose default connection points at the simulator."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES_REGEXP": ".*",
            "PYTHONUNBUFFERED": "1",
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    if sim_url:
        env["AIRFLOW_CONN_MODELSLAB_DEFAULT"] = json.dumps(
            {"conn_type": "modelslab", "password": CANARY_KEY, "host": sim_url, "extra": {"timeout": 5}}
        )
    env.update(overrides)
    return env


def migrate(home: Path) -> None:
    (home / "dags").mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [AIRFLOW, "db", "migrate"],
        env=airflow_env(home, None),
        check=True,
        capture_output=True,
        timeout=300,
    )


@dataclass
class DagRunResult:
    dag_id: str
    run_id: str | None
    returncode: int
    output: str
    home: Path
    states: dict[str, str] = field(default_factory=dict)

    def state(self, task_id: str, map_index: int = -1) -> str | None:
        return self.states.get(_ti_key(task_id, map_index))

    def xcom(self, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        with sqlite3.connect(self.home / "airflow.db") as db:
            row = db.execute(
                "SELECT value FROM xcom WHERE dag_id=? AND run_id=? AND task_id=? AND key=? AND map_index=?",
                (self.dag_id, self.run_id, task_id, key, map_index),
            ).fetchone()
        if row is None:
            return None
        value = row[0]
        return json.loads(value) if isinstance(value, str | bytes) else value

    def tries(self, task_id: str, map_index: int = -1) -> int:
        with sqlite3.connect(self.home / "airflow.db") as db:
            row = db.execute(
                "SELECT try_number FROM task_instance"
                " WHERE dag_id=? AND run_id=? AND task_id=? AND map_index=?",
                (self.dag_id, self.run_id, task_id, map_index),
            ).fetchone()
        return int(row[0]) if row else 0

    def assert_state(self, task_id: str, expected: str, map_index: int = -1) -> None:
        actual = self.state(task_id, map_index)
        assert actual == expected, (
            f"{task_id}[{map_index}] is {actual}, expected {expected}\n"
            f"--- output tail ---\n{self.output[-6000:]}"
        )


def _ti_key(task_id: str, map_index: int) -> str:
    return task_id if map_index < 0 else f"{task_id}[{map_index}]"


def run_dag_test(
    home: Path,
    dag_file: Path,
    dag_id: str,
    *,
    sim_url: str | None,
    conf: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    keep_on_timeout: bool = False,
) -> DagRunResult:
    """``airflow dags test <dag_id> -f <dag_file>`` and the task states of the run it made.

    With ``keep_on_timeout`` a run still going after ``timeout`` is killed and its result so far
    returned (return code -1), so one stuck task does not hide the outcome of the others.
    """
    cmd = [AIRFLOW, "dags", "test", dag_id, "-f", str(dag_file)]
    if conf is not None:
        cmd += ["-c", json.dumps(conf)]
    # ``dags test -f`` needs the file inside the DAGs folder (its bundle), so point the folder at it
    env = {"AIRFLOW__CORE__DAGS_FOLDER": str(Path(dag_file).resolve().parent), **(env or {})}
    try:
        proc = subprocess.run(
            cmd,
            env=airflow_env(home, sim_url, **env),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=home,
        )
        output, returncode = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        if not keep_on_timeout:
            raise
        parts = [
            p.decode(errors="replace") if isinstance(p, bytes) else (p or "")
            for p in (exc.stdout, exc.stderr)
        ]
        output, returncode = "".join(parts) + f"\n[dags test killed after {timeout:.0f} s]", -1
    with sqlite3.connect(home / "airflow.db") as db:
        row = db.execute(
            "SELECT run_id FROM dag_run WHERE dag_id=? ORDER BY id DESC LIMIT 1", (dag_id,)
        ).fetchone()
        run_id = row[0] if row else None
        states = {
            _ti_key(t, m): s
            for t, m, s in db.execute(
                "SELECT task_id, map_index, state FROM task_instance WHERE dag_id=? AND run_id=?",
                (dag_id, run_id),
            )
        }
    return DagRunResult(dag_id, run_id, returncode, output, home, states)


# --------------------------------------------------------------------------- live components
# A real scheduler, triggerer, dag-processor and execution API server on one throwaway
# AIRFLOW_HOME (LocalExecutor, SQLite), for tests that need what ``dags test`` fakes (deferral
# to a separate triggerer, worker slots). Use ``with AirflowComponents(...) as af:`` or a fixture
# whose finalizer calls ``stop()``: every process is killed, whatever the test does.

COMPONENTS: dict[str, list[str]] = {
    "scheduler": ["scheduler"],
    "triggerer": ["triggerer"],
    "dag-processor": ["dag-processor"],
    "api-server": ["api-server", "--apps", "execution", "-H", "127.0.0.1", "-w", "1"],
}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def live_env(
    home: Path, sim_url: str | None, *, api_port: int, parallelism: int = 2, **overrides: str
) -> dict[str, str]:
    """``airflow_env`` plus what components need to work together quickly on one machine."""
    base = f"http://127.0.0.1:{api_port}"
    return airflow_env(
        home,
        sim_url,
        **{
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base}/execution/",
            "AIRFLOW__API__BASE_URL": base,
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API_AUTH__JWT_SECRET": "integration-tests-only-" + "0" * 32,
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "2",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            **overrides,
        },
    )


@dataclass
class AirflowComponents:
    """Start, watch and stop long-running Airflow components, each in its own process group."""

    home: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, *names: str) -> None:
        """Start components; one started again (a restart) appends to its earlier process's log."""
        for name in names:
            log = open(self.home / f"{name}.log", "ab")  # noqa: SIM115  (closed with the process)
            self.procs[name] = subprocess.Popen(
                [AIRFLOW, *COMPONENTS[name]],
                env=self.env,
                cwd=self.home,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            log.close()

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM each component's process group, then SIGKILL what is left."""
        import signal
        import time

        for proc in self.procs.values():
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            _signal_group(proc, signal.SIGKILL)  # also reaps children left in the group
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self.procs.clear()

    def log(self, name: str) -> str:
        path = self.home / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs_tail(self, chars: int = 3000) -> str:
        return "\n".join(f"--- {n} ---\n{self.log(n)[-chars:]}" for n in self.procs)

    def check_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        if dead:
            raise AssertionError(f"Airflow components exited: {dead}\n{self.logs_tail()}")

    def airflow(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """One Airflow CLI command with the components' environment."""
        return subprocess.run(
            [AIRFLOW, *args], env=self.env, cwd=self.home, capture_output=True, text=True, timeout=timeout
        )

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.home / "airflow.db", timeout=30) as db:
            return db.execute(sql, params).fetchall()

    def wait_until(self, what: str, check: Any, timeout: float, interval: float = 0.5) -> Any:
        """Call ``check()`` until it returns something truthy; fail with the logs after ``timeout``."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                value = check()
            except sqlite3.OperationalError:  # table not there yet, or the DB is busy
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{self.logs_tail()}")
            time.sleep(interval)

    def __enter__(self) -> AirflowComponents:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
