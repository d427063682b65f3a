"""Fixtures for integration tests: one simulator and one migrated AIRFLOW_HOME per test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelslab_provider.simulator import Simulator
from tests.integration.airflow_run import migrate


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def sim() -> Iterator[Simulator]:
    """A ModelsLab simulator on 127.0.0.1 for the whole session; tests tell jobs apart by id."""
    with Simulator(port=0, duration=2) as simulator:
        yield simulator


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway AIRFLOW_HOME with a migrated SQLite metadata database."""
    home = tmp_path_factory.mktemp("airflow_home")
    migrate(home)
    return home
