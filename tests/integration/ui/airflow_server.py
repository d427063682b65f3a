"""Start a real Airflow 3 (API server, scheduler, dag-processor, triggerer) for a browser test.

The same four components ``airflow standalone`` runs, started one by one so the test chooses the
port, the auth-manager users and the config, and can always kill every process it started (each
component runs in its own process group, so its workers die with it).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.integration.airflow_run import AIRFLOW, airflow_env

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
ADMIN_USER = "admin"
ADMIN_PASSWORD = "ui-test-admin-pass"  # a throwaway local login


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AirflowServer:
    """Airflow on ``http://127.0.0.1:<port>`` over ``home`` (already migrated), with one admin user.

    ``[core] test_connection`` is enabled, so the connection form's Test button works.
    Connections are not put in the environment: the test creates them through the UI.
    """

    def __init__(self, home: Path, dags_folder: Path, *, port: int | None = None, **env: str) -> None:
        self.home = home
        self.dags_folder = dags_folder
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._token: str | None = None
        passwords = home / "ui_test_passwords.json"
        passwords.write_text(json.dumps({ADMIN_USER: ADMIN_PASSWORD}))
        self.env = airflow_env(
            home,
            None,
            AIRFLOW__CORE__DAGS_FOLDER=str(dags_folder),
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__CORE__PARALLELISM="4",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            AIRFLOW__CORE__TEST_CONNECTION="Enabled",
            AIRFLOW__CORE__AUTH_MANAGER=(
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{ADMIN_USER}:admin",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.url}/execution/",
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(self.port),
            AIRFLOW__API__BASE_URL=self.url,
            AIRFLOW__API__WORKERS="1",
            AIRFLOW__API__SECRET_KEY="ui-test-secret-key",
            AIRFLOW__API_AUTH__JWT_SECRET="ui-test-jwt-secret-0123456789abcdef",
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
            AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK="False",
            **env,
        )

    # ----- lifecycle -------------------------------------------------------------------------

    def start(self) -> AirflowServer:
        try:
            for name in COMPONENTS:
                self._start(name, self.env)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, name: str, env: dict[str, str]) -> None:
        with (self.home / f"{name}.log").open("ab") as log:
            self.procs[name] = subprocess.Popen(
                [AIRFLOW, name],
                env=env,
                cwd=self.home,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def restart_api_server(self, **env: str) -> None:
        """Stop the API server and start it again with ``env`` added; wait until it answers."""
        proc = self.procs["api-server"]
        _signal_group(proc, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        _signal_group(proc, signal.SIGKILL)
        proc.wait()
        self._start("api-server", {**self.env, **env})
        self.wait_ready()

    def stop(self) -> None:
        """SIGTERM every component's process group, then SIGKILL what is left after 5 s.

        The home is thrown away, so nothing is gained by waiting for a graceful triggerer exit.
        """
        for proc in self.procs.values():
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in self.procs.values():
            _signal_group(proc, signal.SIGKILL)
            proc.wait()

    def __enter__(self) -> AirflowServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def logs(self, tail: int = 3000) -> str:
        out = []
        for name in COMPONENTS:
            path = self.home / f"{name}.log"
            text = path.read_text(errors="replace") if path.exists() else ""
            out.append(f"--- {name} ---\n{text[-tail:]}")
        return "\n".join(out)

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"airflow {name} exited with {proc.returncode}\n{self.logs()}")

    # ----- REST API (for waiting and for reading results the UI shows) -----------------------

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5) as resp:
                    if resp.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"API server not ready on {self.url}\n{self.logs()}")
            time.sleep(0.5)

    def token(self) -> str:
        if self._token is None:
            body = json.dumps({"username": ADMIN_USER, "password": ADMIN_PASSWORD}).encode()
            req = urllib.request.Request(
                f"{self.url}/auth/token", data=body, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(req, timeout=10) as resp:
                self._token = json.loads(resp.read())["access_token"]
        return self._token

    def api(self, path: str, method: str = "GET", body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.url}/api/v2/{path.lstrip('/')}",
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token()}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def ui_api(self, path: str) -> Any:
        """The UI's private API (``/ui/...``), as the React app reads it."""
        req = urllib.request.Request(
            f"{self.url}/ui/{path.lstrip('/')}", headers={"Authorization": f"Bearer {self.token()}"}
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")

    def wait_for_dag(self, dag_id: str, timeout: float = 90) -> None:
        """Wait until the dag-processor has parsed ``dag_id`` (the UI can only trigger it then)."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                self.api(f"dags/{dag_id}")
                return
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise
            if time.monotonic() > deadline:
                errors = self.api("importErrors")
                raise TimeoutError(f"DAG {dag_id} not parsed: {errors}\n{self.logs()}")
            time.sleep(1)

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 150) -> str:
        """Wait until the run is finished and return its state."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            state = self.api(f"dags/{dag_id}/dagRuns/{_q(run_id)}")["state"]
            if state in ("success", "failed"):
                return str(state)
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {dag_id}/{run_id} still {state}\n{self.logs()}")
            time.sleep(1)

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        return dict(self.api(f"dags/{dag_id}/dagRuns/{_q(run_id)}/taskInstances/{task_id}"))

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """The deserialised XCom value, or None when the task pushed none under ``key``."""
        path = f"dags/{dag_id}/dagRuns/{_q(run_id)}/taskInstances/{task_id}/xcomEntries/{key}"
        try:
            return self.api(f"{path}?deserialize=true")["value"]
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """The task's log as the UI reads it (structured lines, as JSON text)."""
        path = f"dags/{dag_id}/dagRuns/{_q(run_id)}/taskInstances/{task_id}/logs/{try_number}"
        return json.dumps(self.api(f"{path}?full_content=true"))


def _q(run_id: str) -> str:
    return urllib.parse.quote(run_id, safe="")


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
