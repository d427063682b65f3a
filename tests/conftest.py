"""Shared test settings: tests never read a real ModelsLab key or a developer's Airflow home."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# unit tests build Airflow objects without a metadata DB; keep them off any real AIRFLOW_HOME
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="modelslab-unit-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")


# Hypothesis: ``HYPOTHESIS_PROFILE=deep`` (``make fuzz``) multiplies the fuzz tests' examples by 10
# (see ``tests/unit/test_fuzz_responses.py``: at least 10,000 generated responses per run); the
# default profile keeps ``make test`` fast.
from hypothesis import settings

settings.register_profile("fast")  # Hypothesis' defaults (100 examples unless a test says otherwise)
settings.register_profile("deep", deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))

# the real key is taken out of the environment; only tests/system (`make system-test`) reads it from here
SYSTEM_API_KEY = os.environ.pop("MODELSLAB_API_KEY", None) or ""

SYSTEM_TESTS = Path(__file__).resolve().parent / "system"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """tests/system spends real credits: collected only when a path inside it is named (make system-test)."""
    if collection_path != SYSTEM_TESTS:
        return None
    named = [Path(arg.split("::")[0]).resolve() for arg in config.args]
    return not any(p == SYSTEM_TESTS or SYSTEM_TESTS in p.parents for p in named)


#: generated ModelsLab responses seen by the fuzz tests in this session (checked by ``make fuzz``)
FUZZ_RESPONSES = [0]
DEEP_MIN_RESPONSES = 10_000


def pytest_sessionfinish(session, exitstatus):  # type: ignore[no-untyped-def]
    if FUZZ_RESPONSES[0]:
        print(f"\nfuzz: {FUZZ_RESPONSES[0]} generated responses (profile {settings._current_profile})")
    if os.environ.get("HYPOTHESIS_PROFILE") == "deep" and FUZZ_RESPONSES[0] < DEEP_MIN_RESPONSES:
        print(f"fuzz: the deep profile must reach {DEEP_MIN_RESPONSES} responses")
        session.exitstatus = 1


@pytest.fixture(autouse=True)
def _fresh_connection_lookups() -> Iterator[None]:
    """Each test sees its own connections: the triggers' short-lived lookup cache starts empty."""
    from modelslab_provider.hooks.modelslab import clear_settings_cache

    clear_settings_cache()
    yield
    clear_settings_cache()
