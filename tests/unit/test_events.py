"""modelslab_provider.events: the one mapping from errors and events to Airflow exceptions."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowNotFoundException,
)

from modelslab_provider import events
from modelslab_provider.client import errors
from modelslab_provider.events import FINAL_ERROR_TYPES, error_type, failure, wait_deadline


def _error_classes() -> list[type[errors.ModelsLabError]]:
    return [
        c
        for _, c in inspect.getmembers(errors, inspect.isclass)
        if issubclass(c, errors.ModelsLabError) and c.__module__ == errors.__name__
    ]


def _instance(cls: type[errors.ModelsLabError]) -> errors.ModelsLabError:
    return cls("boom")


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda c: c.__name__)
def test_every_error_class_carries_its_error_type(cls: type[errors.ModelsLabError]) -> None:
    """Issue 12.2: ``error_type`` is a class attribute, read directly (no isinstance ladder)."""
    exc = _instance(cls)
    assert error_type(exc) == cls.error_type
    raised = failure(exc, "my_conn")
    if cls.error_type in FINAL_ERROR_TYPES:
        assert isinstance(raised, AirflowFailException)
    else:
        assert cls.retryable or cls.error_type == "timeout"
        assert not isinstance(raised, AirflowFailException)
        assert isinstance(raised, AirflowException)


def test_error_types_are_distinct_where_users_act_differently() -> None:
    kinds = {c.error_type for c in _error_classes()}
    assert {"auth", "plan", "credits", "request", "not_found", "config", "transient", "rate_limit"} <= kinds
    assert "plan" in FINAL_ERROR_TYPES
    assert "transient" not in FINAL_ERROR_TYPES


def test_a_missing_connection_is_a_final_config_error() -> None:
    exc = AirflowNotFoundException("Connection 'x' is not defined: create a connection of type 'modelslab'")
    assert error_type(exc) == "config"
    assert isinstance(failure(exc, "x"), AirflowFailException)
    assert error_type(RuntimeError("bug")) == "unexpected"
    assert not isinstance(failure(RuntimeError("bug"), "x"), AirflowFailException)


def test_the_trigger_module_reexports_the_one_mapping() -> None:
    from modelslab_provider.triggers import video

    assert video.urls_from_event is events.urls_from_event
    assert video.error_message is events.error_message
    assert not hasattr(video, "_error_type")


@pytest.mark.parametrize(
    ("execution_timeout", "expected_limit", "expected_end"),
    [
        (None, "timeout of 3600 s", 1_003_600),
        (timedelta(seconds=20), "execution_timeout of 20 s", 1_000_020),
        (timedelta(hours=2), "timeout of 3600 s", 1_003_600),
        (30, "execution_timeout of 30 s", 1_000_030),
    ],
)
def test_wait_deadline_is_the_earlier_limit(execution_timeout, expected_limit, expected_end) -> None:
    """Issue 11.7: the earlier of ``timeout`` and the try's start plus ``execution_timeout``."""
    start = 1_000_000.0
    deadline, limit = wait_deadline(start + 3600, 3600, execution_timeout, start, start + 5)
    assert limit == expected_limit
    assert deadline == (start + 3600 if execution_timeout is None else min(start + 3600, expected_end))
    as_datetime = datetime.fromtimestamp(start, UTC)
    assert wait_deadline(start + 3600, 3600, execution_timeout, as_datetime, start + 5) == (deadline, limit)


def test_compact_meta_shortens_only_huge_strings() -> None:
    meta = {"prompt": "a cat", "init_image": "A" * 5000, "nested": [{"x": "B" * 3000}], "n": 3}
    compact = events.compact_meta(meta)
    assert compact["prompt"] == "a cat"
    assert compact["n"] == 3
    assert compact["init_image"].endswith("(5000 characters, shortened)")
    assert compact["nested"][0]["x"].endswith("(3000 characters, shortened)")
