"""The client against the response bodies ModelsLab documents (tests/fixtures/modelslab)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from modelslab_provider.client.core import Status
from modelslab_provider.client.errors import ModelsLabError, ModelsLabJobFailedError, ModelsLabRateLimitError
from modelslab_provider.client.policy import Action, WaitTracker
from modelslab_provider.client.responses import parse_balance
from modelslab_provider.events import FINAL_ERROR_TYPES, failure
from tests.fixtures import cases, load
from tests.unit.answers import parse_answer

CLASS = {Status.DONE: "done", Status.RUNNING: "running", Status.FAILED: "failed"}


def classify(status_code: int, body: dict[str, Any]) -> str:
    """What the client makes of one answer: a result class, or the typed error's ``error_type``."""
    try:
        return CLASS[parse_answer(status_code, json.dumps(body).encode()).status]
    except ModelsLabError as exc:
        return exc.error_type


def _id(case: dict[str, Any]) -> str:
    return str(case["name"])


@pytest.mark.parametrize("case", [c for c in cases() if c["expect"] != "balance"], ids=_id)
def test_every_documented_body_is_classified_as_expected(case: dict[str, Any]) -> None:
    assert case["source"].startswith("https://docs.modelslab.com/")
    assert classify(case["http_status"], case["body"]) == case["expect"]


@pytest.mark.parametrize("case", load("terminal_failures.json")["cases"], ids=_id)
def test_a_terminal_job_status_wins_over_message_keywords(case: dict[str, Any]) -> None:
    """Issue 11.4: a finished job's failure carries the API's message and ends the wait at once.

    Keywords ("rate limit", "refunded", "authentication") refine only an ``error`` answer to the
    call itself (no job id), e.g. a submit refused because the queue is full.
    """
    body = case["body"]
    if case["expect"] != "failed":
        with pytest.raises(ModelsLabError) as info:
            parse_answer(case["http_status"], json.dumps(body).encode())
        assert info.value.error_type == case["expect"]
        if case["expect"] == "rate_limit":
            assert isinstance(info.value, ModelsLabRateLimitError)
            assert info.value.retry_after == 30
        return
    result = parse_answer(case["http_status"], json.dumps(body).encode())
    assert result.status is Status.FAILED
    tracker = WaitTracker(request_id=str(body["id"]), started_at=0.0)
    decision = tracker.on_result(result, 1.0)
    assert decision.action is Action.FAIL
    assert isinstance(decision.error, ModelsLabJobFailedError)
    assert body["message"] in str(decision.error)
    assert not decision.error.retryable
    assert isinstance(failure(decision.error, "modelslab_default"), AirflowFailException)


@pytest.mark.parametrize("case", [c for c in cases() if c["expect"] not in CLASS.values()], ids=_id)
def test_errors_map_to_final_or_retryable_airflow_exceptions(case: dict[str, Any]) -> None:
    if case["expect"] == "balance":
        balance = parse_balance(case["body"])
        assert balance.amount == case["balance"]
        return
    with pytest.raises(ModelsLabError) as info:
        parse_answer(case["http_status"], json.dumps(case["body"]).encode())
    raised = failure(info.value, "modelslab_default")
    if case["expect"] in FINAL_ERROR_TYPES:
        assert isinstance(raised, AirflowFailException)
    else:
        assert case["expect"] in ("transient", "rate_limit")
        assert isinstance(raised, AirflowException)
        assert not isinstance(raised, AirflowFailException)


def test_403_is_about_the_plan_not_the_key() -> None:
    """Issue 11.5: the error-codes page defines 403 as a feature missing from the current plan."""
    body = load("error_codes.json")["cases"][4]
    assert body["http_status"] == 403
    with pytest.raises(ModelsLabError) as info:
        parse_answer(403, json.dumps(body["body"]).encode())
    assert info.value.error_type == "plan"
    text = str(failure(info.value, "my_conn"))
    assert "current plan" in text
    assert "API key" not in text.replace("the API key itself was accepted", "")
    # an unreadable 403 body is a plan error too
    with pytest.raises(ModelsLabError) as info:
        parse_answer(403, b"<html>Forbidden</html>")
    assert info.value.error_type == "plan"
