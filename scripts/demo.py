"""``make demo``: run the example text-to-video DAG end to end and print the video URLs.

Without ``MODELSLAB_API_KEY`` it starts the local simulator (``python -m modelslab_provider.simulator
--port 0``) and points the ``modelslab_default`` connection at it; with the variable set it uses the
real API at https://modelslab.com (this spends credits). Airflow runs on a throwaway SQLite
``AIRFLOW_HOME`` (``.demo/airflow`` by default; ``make clean`` removes it). The simulator is always
stopped at the end. Standard library only: it drives Airflow through its CLI, like a user would.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DAG_FILE = REPO / "dags_examples" / "example_text_to_video.py"
DEFAULT_DAG_ID = "example_modelslab_text_to_video"
DEFAULT_HOME = REPO / ".demo" / "airflow"
REAL_API = "https://modelslab.com"
#: the simulator accepts any key that does not start with "invalid"; this one is not a secret
SIMULATOR_KEY = "demo-key-not-secret"
URL_LINE = re.compile(r"listening on (http://\S+)")
URI = re.compile(r"^[a-z][a-z0-9+.-]*://\S+$", re.I)


class DemoError(Exception):
    """A step of the demo failed; the message says which and where to look."""


def say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def bin_dir() -> Path:
    """The venv's bin directory: ``airflow`` is installed next to the running interpreter."""
    return Path(sys.executable).parent


# --------------------------------------------------------------------------- simulator


class SimulatorProcess:
    """``python -m modelslab_provider.simulator --port 0`` as a child process; stopped on exit."""

    def __init__(self, startup_timeout: float = 30.0) -> None:
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self._lines: queue.Queue[str | None] = queue.Queue()

    def __enter__(self) -> SimulatorProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "modelslab_provider.simulator", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            cwd=REPO,
        )
        assert self.proc.stdout is not None
        threading.Thread(target=self._pump, args=(self.proc.stdout,), daemon=True).start()
        deadline = time.monotonic() + self.startup_timeout
        seen: list[str] = []
        while not self.url:
            try:
                line = self._lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                self.stop()
                raise DemoError(f"the simulator printed no URL within {self.startup_timeout:.0f} s") from None
            if line is None:
                self.stop()
                raise DemoError("the simulator exited at start-up:\n" + "".join(seen[-20:]))
            seen.append(line)
            match = URL_LINE.search(line)
            if match:
                self.url = match.group(1)
        return self

    def _pump(self, stream: IO[str]) -> None:
        """Read the child's output so it never blocks on a full pipe."""
        for line in stream:
            self._lines.put(line)
        self._lines.put(None)

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- airflow


def airflow_env(home: Path, dags_folder: Path, connection: dict[str, Any]) -> dict[str, str]:
    """The caller's environment minus any Airflow settings, plus the demo's home and connection.

    The DAGs folder is the example DAG's own folder: ``airflow dags test -f`` (3.3) wants the file
    inside the bundle it syncs to the database.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW_CONN_MODELSLAB_DEFAULT": json.dumps(connection),
            "PYTHONUNBUFFERED": "1",
            "PATH": f"{bin_dir()}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    env.pop("MODELSLAB_API_KEY", None)
    return env


def run_logged(cmd: list[str], env: dict[str, str], log_path: Path, secret: str | None, echo: bool) -> int:
    """Run ``cmd``; its output goes to ``log_path`` (and the terminal if ``echo``) with the key masked."""
    with log_path.open("a", encoding="utf-8") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        proc = subprocess.Popen(  # noqa: S603  (our own airflow executable and arguments)
            cmd,
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
        )
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                if secret:
                    line = line.replace(secret, "***")
                log.write(line)
                if echo:
                    sys.stdout.write(line)
        finally:
            if proc.poll() is None:
                proc.terminate()
            returncode = proc.wait()
    return returncode


def tail(path: Path, lines: int = 40) -> str:
    return "".join(path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)[-lines:])


def _walk_urls(value: Any) -> Iterator[str]:
    """Every URL or URI (``https://...``, ``file://...``, ``s3://...``) in a JSON value."""
    if isinstance(value, str):
        if URI.match(value):
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _walk_urls(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _walk_urls(item)


def output_urls(home: Path, dag_id: str) -> tuple[str | None, dict[str, list[str]]]:
    """URLs in the ``return_value`` XComs of the DAG's latest run, by task id (outputs and stored copies)."""
    with sqlite3.connect(home / "airflow.db") as db:
        row = db.execute(
            "SELECT run_id, state FROM dag_run WHERE dag_id=? ORDER BY id DESC LIMIT 1", (dag_id,)
        ).fetchone()
        if row is None:
            return None, {}
        run_id, state = row
        rows = db.execute(
            "SELECT task_id, map_index, value FROM xcom WHERE dag_id=? AND run_id=? AND key='return_value' "
            "ORDER BY task_id, map_index",
            (dag_id, run_id),
        ).fetchall()
    found: dict[str, list[str]] = {}
    for task_id, map_index, raw in rows:
        try:
            value = json.loads(raw) if isinstance(raw, str | bytes) else raw
        except ValueError:
            continue
        urls = list(dict.fromkeys(_walk_urls(value)))
        if urls:
            label = task_id if map_index is None or map_index < 0 else f"{task_id}[{map_index}]"
            found[label] = urls
    return state, found


# --------------------------------------------------------------------------- main


def run_demo(args: argparse.Namespace) -> int:
    home: Path = args.home.resolve()
    dag_file: Path = args.dag_file.resolve()
    if not dag_file.is_file():
        raise DemoError(f"example DAG not found: {dag_file}")
    home.mkdir(parents=True, exist_ok=True)
    log_path = home.parent / "demo.log"
    log_path.write_text("", encoding="utf-8")
    airflow = str(bin_dir() / "airflow")

    api_key = os.environ.get("MODELSLAB_API_KEY", "").strip()
    with contextlib.ExitStack() as stack:
        if api_key:
            say(f"MODELSLAB_API_KEY is set: using the real ModelsLab API at {REAL_API} (this spends credits)")
            connection = {"conn_type": "modelslab", "password": api_key, "host": REAL_API}
        else:
            simulator = stack.enter_context(SimulatorProcess())
            stack.callback(say, "stopped the simulator")
            say(
                f"started the ModelsLab simulator at {simulator.url} (set MODELSLAB_API_KEY for the real API)"
            )
            connection = {"conn_type": "modelslab", "password": SIMULATOR_KEY, "host": simulator.url}
        env = airflow_env(home, dag_file.parent, connection)

        say(f"AIRFLOW_HOME={home}: airflow db migrate (log: {log_path})")
        if run_logged([airflow, "db", "migrate"], env, log_path, api_key, args.verbose) != 0:
            raise DemoError(f"airflow db migrate failed:\n{tail(log_path)}")

        shown = dag_file.relative_to(REPO) if dag_file.is_relative_to(REPO) else dag_file
        say(f"airflow dags test {args.dag_id} -f {shown}")
        started = time.monotonic()
        code = run_logged(
            [airflow, "dags", "test", args.dag_id, "-f", str(dag_file)], env, log_path, api_key, args.verbose
        )
        elapsed = time.monotonic() - started
        state, urls = output_urls(home, args.dag_id)
        if code != 0 or state != "success":
            raise DemoError(
                f"the DAG run ended in state {state} (exit code {code}) after {elapsed:.0f} s; "
                f"last lines of {log_path}:\n{tail(log_path)}"
            )
        if not urls:
            raise DemoError(f"the DAG run succeeded but pushed no output URL to XCom; see {log_path}")
        say(f"DAG run succeeded in {elapsed:.0f} s; output URLs from XCom:")
        for task_id, task_urls in urls.items():
            for url in task_urls:
                print(f"  {task_id}: {url}", flush=True)
        return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME, help="throwaway AIRFLOW_HOME")
    parser.add_argument("--dag-file", type=Path, default=DEFAULT_DAG_FILE)
    parser.add_argument("--dag-id", default=DEFAULT_DAG_ID)
    parser.add_argument("-v", "--verbose", action="store_true", help="show Airflow's output as it runs")
    return parser.parse_args(argv)


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM (e.g. CI cancelling the job) unwinds like Ctrl-C, so the simulator is stopped
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return run_demo(args)
    except DemoError as exc:
        say(f"FAILED: {exc}")
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
