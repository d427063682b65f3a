"""One deployment (PostgreSQL, Redis, CeleryExecutor, two triggerers, two workers) for the whole session.

Outside CI, a machine that lacks what the deployment needs (and root to install it) skips the suite
with a message naming what is missing; with ``CI=true`` that is a failure instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.distributed.deployment import Deployment, Missing, ensure_installed

DAG_FILE = Path(__file__).resolve().parent / "dags" / "dist_scenarios.py"
DAG_IDS = ["dist_spread", "dist_failover", "dist_worker_kill", "dist_db_restart"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/distributed/" in str(item.fspath):
            item.add_marker(pytest.mark.distributed)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def say(pytestconfig: pytest.Config) -> object:
    """Print a line to the terminal as the session goes (settings, timings), captured or not."""
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")

    def _say(text: str) -> None:
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            if reporter is not None:
                reporter.write_line(f"[distributed] {text}")
            else:
                print(text)

    return _say


@pytest.fixture(scope="session")
def deployment(say: object) -> Iterator[Deployment]:
    problem = None
    if os.geteuid() != 0:
        problem = (
            "the distributed suite needs root (it installs Debian's postgresql and redis-server and "
            "runs PostgreSQL as the 'postgres' user); run `make test-distributed` as root"
        )
    else:
        try:
            ensure_installed()
        except Missing as missing:
            problem = str(missing)
    if problem:
        if _in_ci():
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)
    # not under pytest's tmp folders: those are 0700, and the postgres user must reach its data
    root = Path(tempfile.mkdtemp(prefix="modelslab-dist-"))
    begun = time.monotonic()
    dep = Deployment.start_all(
        root,
        dags=[DAG_FILE],
        extra_env={"DIST_SPREAD_N": "100", "DIST_FAILOVER_N": "100", "DIST_DB_N": "50"},
    )
    try:
        for line in dep.describe().splitlines():
            say(line)  # type: ignore[operator]
        dep.wait_for_dags(DAG_IDS)
        say(f"deployment up in {time.monotonic() - begun:.0f} s ({dep.timings})")  # type: ignore[operator]
        yield dep
    finally:
        with contextlib.suppress(Exception):
            say(f"CPU seconds per component (process trees): {dep.cpu_report()}")  # type: ignore[operator]
        dep.stop()
        if os.environ.get("DIST_KEEP"):
            say(f"kept {root}")  # type: ignore[operator]
        else:
            shutil.rmtree(root, ignore_errors=True)
