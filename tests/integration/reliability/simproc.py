"""The simulator as a child process that a test can stop and restart on the same port.

What "restart" means here: the process is killed (clients get connection errors while it is
down), then a new process starts on the same port *with the jobs it had*, as the real service
keeps its jobs across a restart of its front end. The simulator keeps jobs in memory only, so
the new process is started by :func:`main` (``python -m tests.integration.reliability.simproc``),
which replays the previous incarnations' accepted submissions into a fresh ``SimState`` before
it listens: ids are handed out in order from the same start, so every job gets its old id back,
and no client can see the jobs missing. Replayed jobs start over (poll counts and timers).

The replayed bodies come from the simulator's own request log, which never holds the key; the
launcher reads the key from the ``SIM_REPLAY_KEY`` environment variable (never from disk).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from modelslab_provider.simulator.state import PREFIXES

REPLAY_KEY_ENV = "SIM_REPLAY_KEY"
_SUBMIT_PREFIXES = {prefix + "/": version for version, prefix in PREFIXES.items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def submit_route(path: str) -> tuple[str, str] | None:
    """``(version, endpoint)`` of a submit path, or None for fetches and other routes."""
    for prefix, version in _SUBMIT_PREFIXES.items():
        if path.startswith(prefix):
            endpoint = path[len(prefix) :]
            if endpoint and "/" not in endpoint and endpoint != "fetch":
                return version, endpoint
    return None


def accepted_submits(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Request-log entries of submissions that created a job, in id order."""
    found = [
        e
        for e in entries
        if e.get("method") == "POST"
        and submit_route(e.get("path", "")) is not None
        and isinstance(e.get("job_id"), int)
        and e.get("status") == 200
    ]
    return sorted(found, key=lambda e: e["job_id"])


class SimProcess:
    """``python -m tests.integration.reliability.simproc`` on ``127.0.0.1:port``; stop/restart at will.

    Every incarnation appends its output (``-v``: one line per request) to ``log_file``;
    ``incarnations`` keeps the request log of each stopped one.
    """

    def __init__(self, log_file: Path, *, port: int = 0, key: str, args: tuple[str, ...] = ()) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_file = log_file
        self.key = key
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.incarnations: list[list[dict[str, Any]]] = []
        self._replay_file = log_file.with_suffix(".replay.json")

    # ----- lifecycle -------------------------------------------------------------------------

    def start(self, replay: list[dict[str, Any]] | None = None) -> SimProcess:
        self._replay_file.write_text(json.dumps(replay or []))
        env = {**os.environ, REPLAY_KEY_ENV: self.key}
        cmd = [sys.executable, "-m", "tests.integration.reliability.simproc", "--port", str(self.port)]
        cmd += ["--replay", str(self._replay_file), "-v", *self.args]
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=Path(__file__).resolve().parents[3],
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"simulator exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
            try:
                self.get("/_sim/health")
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def kill(self) -> list[dict[str, Any]]:
        """Read the request log, then SIGKILL the process (a crash: open connections just die)."""
        entries = self.requests()
        self._signal(signal.SIGKILL)
        self.incarnations.append(entries)
        return entries

    def stop(self) -> None:
        """Graceful stop (SIGTERM) keeping the last request log; safe to call twice."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(OSError):
            self.incarnations.append(self.requests())
        self._signal(signal.SIGTERM)

    def restart(self, down: float) -> float:
        """Kill, stay down ``down`` seconds, start again on the same port with the same jobs.

        Returns the wall-clock time at which the new process listened.
        """
        self.kill()
        time.sleep(down)
        self.start(replay=accepted_submits(self.all_requests()))
        return time.time()

    def _signal(self, sig: int) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> SimProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----- admin API -------------------------------------------------------------------------

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as resp:
            return json.loads(resp.read())

    def post(self, path: str) -> Any:
        request = urllib.request.Request(self.url + path, data=b"{}", method="POST")
        with urllib.request.urlopen(request, timeout=10) as resp:
            return json.loads(resp.read())

    def complete(self, job_id: int | str) -> None:
        """Force a job to succeed now (``POST /_sim/jobs/<id>/complete``)."""
        self.post(f"/_sim/jobs/{job_id}/complete")

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        return list(self.get(f"/_sim/requests?since={since}"))

    def stats(self) -> dict[str, Any]:
        return dict(self.get("/_sim/stats"))

    def all_requests(self) -> list[dict[str, Any]]:
        """Request logs of every incarnation, oldest first (the running one read now)."""
        current: list[dict[str, Any]] = []
        if self.proc is not None and self.proc.poll() is None:
            current = self.requests()
        return [e for log in self.incarnations for e in log] + current

    def output(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""


# --------------------------------------------------------------------------- the launcher


async def _serve(port: int, replay: list[dict[str, Any]], key: str | None) -> None:
    from modelslab_provider.simulator import SimState, start_simulator
    from modelslab_provider.simulator.batch import submit_batch

    state = SimState()
    base_url = f"http://127.0.0.1:{port}"
    for entry in replay:
        route = submit_route(entry["path"])
        assert route is not None, entry
        assert key, f"set {REPLAY_KEY_ENV} to replay submissions"
        body = {**(entry.get("body") or {}), "key": key}
        if route[1] == "batch":  # a batch takes its own id, then one per entry: replayed in order
            reply = submit_batch(state, body, key, base_url)
        else:
            reply = state.submit(route[0], route[1], body, key, base_url)
        if reply.job_id != entry["job_id"]:
            raise SystemExit(f"replay gave job {reply.job_id}, expected {entry['job_id']}")
    server = await start_simulator("127.0.0.1", port, state=state)
    print(f"ModelsLab simulator listening on {server.url} with {len(replay)} replayed job(s)", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--replay", type=Path, default=None)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    replay = json.loads(args.replay.read_text()) if args.replay else []
    asyncio.run(_serve(args.port, replay, os.environ.get(REPLAY_KEY_ENV)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
