"""Shared test settings: tests never read a real ModelsLab key or a developer's Airflow home."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

# unit tests build Airflow objects without a metadata DB; keep them off any real AIRFLOW_HOME
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="modelslab-unit-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.pop("MODELSLAB_API_KEY", None)


@pytest.fixture(autouse=True)
def _fresh_connection_lookups() -> Iterator[None]:
    """Each test sees its own connections: the triggers' short-lived lookup cache starts empty."""
    from modelslab_provider.hooks.modelslab import clear_settings_cache

    clear_settings_cache()
    yield
    clear_settings_cache()
