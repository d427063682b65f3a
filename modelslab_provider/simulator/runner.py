"""``Simulator``: the simulator in a background thread with its own event loop, for sync tests.

aiohttp is imported only when a simulator starts, so importing this module stays cheap.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .state import SimConfig, SimState

if TYPE_CHECKING:
    import asyncio

    from .app import SimulatorServer

T = TypeVar("T")


class Simulator:
    """Run the ModelsLab simulator on ``host:port`` (0 = free port) in a daemon thread.

    Use as a context manager; ``url`` is the base URL to put in the connection's host. Inspection
    and control methods run on the server's loop, so they are safe while requests are in flight.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, seed: int | None = None, **config: Any
    ) -> None:
        cfg = SimConfig()
        cfg.update(**config)
        self.host = host
        self.port = port
        self.state = SimState(cfg, seed=seed)
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: SimulatorServer | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # ----- lifecycle ---------------------------------------------------------------------

    def start(self) -> Simulator:
        """Start the server thread and wait until it listens."""
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name="modelslab-simulator", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=30)
        if self._error is not None:
            raise RuntimeError("simulator failed to start") from self._error
        if self._server is None:
            raise RuntimeError("simulator did not start within 30 s")
        self.port = self._server.port
        self.url = self._server.url
        return self

    def _run(self) -> None:
        import asyncio

        from .app import start_simulator

        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._server = loop.run_until_complete(start_simulator(self.host, self.port, state=self.state))
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._server.close())
            # handlers whose client already left (a slow answer it gave up on) outlive the server's
            # shutdown: end them before closing the loop, as asyncio.run does
            loop.run_until_complete(_cancel_all(asyncio.all_tasks(loop)))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self) -> None:
        """Stop the server and join its thread; safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ----- inspection and control ----------------------------------------------------------

    def _call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server loop (or directly when the server is not running)."""
        import asyncio

        loop = self._loop
        if loop is None or not loop.is_running():
            return fn()

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=10)

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        """Request log: method, path, job id, key fingerprint, header names, body without key.

        ``since`` returns only entries whose ``seq`` is larger (for incremental reads).
        """
        return self._call(lambda: self.state.requests_snapshot(since))

    def jobs(self) -> dict[str, Any]:
        """Jobs by id with endpoint, version, status, polls, timestamps and scenario."""
        return self._call(self.state.jobs_snapshot)

    def batches(self) -> dict[str, Any]:
        """Video batches by id: entry job ids, track ids, batch polls, refunded job ids."""
        from .batch import batches_snapshot

        return self._call(lambda: batches_snapshot(self.state))

    def stats(self) -> dict[str, Any]:
        """Counters: submits, fetches per job, fetches after a terminal state, faults."""
        return self._call(self.state.stats_snapshot)

    def config(self) -> dict[str, Any]:
        """Current runtime config (the expected key only as a flag and fingerprint)."""
        return self._call(self.state.config.public)

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change runtime defaults (queue_limit, rate_limit_style, duration, api_key, ...)."""

        def apply() -> dict[str, Any]:
            self.state.config.update(**settings)
            return self.state.config.public()

        return self._call(apply)

    def reset(self) -> None:
        """Forget jobs, request log and counters; restore the start-up config."""
        self._call(self.state.reset)

    def complete(self, job_id: int | str) -> bool:
        """Force a job to succeed now."""
        return self._call(lambda: self.state.force(str(job_id), "success"))

    def fail(self, job_id: int | str) -> bool:
        """Force a job to fail now."""
        return self._call(lambda: self.state.force(str(job_id), "failed"))


async def _cancel_all(tasks: set[Any]) -> None:
    """Cancel ``tasks`` and wait until each has ended (runs on the loop that owns them)."""
    import asyncio

    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
