"""Real-API system tests: collected only when named (``make system-test``), run only with a key.

``MODELSLAB_API_KEY`` is the key (it spends credits); ``MODELSLAB_BASE_URL`` optionally points
at another server (a dedicated one, or the simulator to try the suite for free);
``MODELSLAB_SYSTEM_BATCH=1`` adds the batch of 3 videos.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import SYSTEM_API_KEY as KEY
from tests.integration.airflow_run import migrate


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`make system-test` checks for the key first; this covers `pytest tests/system` run by hand."""
    if not KEY:
        for item in items:
            item.add_marker(
                pytest.mark.skip(reason="MODELSLAB_API_KEY is not set: the system tests need a key")
            )


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("system_airflow_home")
    migrate(home)
    return home


@pytest.fixture(scope="session")
def real_connection() -> dict[str, str]:
    """The ``modelslab_default`` connection for the DAG runs, from the environment (never logged)."""
    conn: dict[str, object] = {"conn_type": "modelslab", "password": KEY}
    if base_url := os.environ.get("MODELSLAB_BASE_URL"):
        conn["host"] = base_url
    return {"AIRFLOW_CONN_MODELSLAB_DEFAULT": json.dumps(conn)}
