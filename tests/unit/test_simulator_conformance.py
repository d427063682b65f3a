"""The simulator answers in the shapes ModelsLab documents (tests/fixtures/modelslab).

For each documented body the simulator is driven into the same situation over real HTTP on
127.0.0.1; its answer must carry every documented field with the documented JSON type and be
classified by the client exactly like the documented body. When they disagree, the docs win and
the simulator is fixed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from modelslab_provider.simulator import Simulator
from tests.fixtures import case
from tests.unit.test_docs_fixtures import classify

KEY = "sk-conformance-5e0c1a"


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(port=0, duration=30) as simulator:
        yield simulator


def post(sim: Simulator, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = requests.post(f"{sim.url}/{path}", json=body, timeout=10)
    return response.status_code, response.json()


def submit(sim: Simulator, scenario: str, key: str = KEY) -> tuple[int, dict[str, Any]]:
    body = {"key": key, "prompt": f"a fox [sim:{scenario}]", "track_id": "conformance-1"}
    return post(sim, "api/v6/video/text2video", body)


def fetch(sim: Simulator, scenario: str) -> tuple[int, dict[str, Any]]:
    _, body = submit(sim, scenario)
    return post(sim, f"api/v6/video/fetch/{body['id']}", {"key": KEY})


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _with_sim(sim: Simulator, settings: dict[str, Any], call: Callable[[], tuple[int, dict[str, Any]]]):
    before = sim.config()
    sim.configure(**settings)
    try:
        return call()
    finally:
        sim.configure(**{k: before[k] for k in settings if k in before})


SITUATIONS: dict[str, Callable[[Simulator], tuple[int, dict[str, Any]]]] = {
    "submit_processing": lambda sim: submit(sim, "duration=30 eta=30"),
    "submit_success": lambda sim: submit(sim, "duration=0 instant=1"),
    "fetch_processing": lambda sim: fetch(sim, "outcome=never"),
    "fetch_success": lambda sim: fetch(sim, "duration=0"),
    "fetch_failed": lambda sim: fetch(sim, "duration=0 outcome=failed"),
    "200_key_required": lambda sim: submit(sim, "duration=1", key=""),
    "401_invalid_key": lambda sim: _with_sim(
        sim, {"auth_error_status": 401}, lambda: submit(sim, "duration=1", key="invalid-key")
    ),
    "402_credits": lambda sim: _with_sim(
        sim, {"auth_error_status": 401}, lambda: submit(sim, "duration=1", key="sk-nocredit-1")
    ),
    "403_plan": lambda sim: fetch(sim, "duration=30 fault=403"),
    "429_queue_full": lambda sim: _with_sim(
        sim,
        {"queue_limit": 1, "retry_after": 30},
        lambda: (submit(sim, "outcome=never"), submit(sim, "outcome=never"))[1],
    ),
    "wallet_balance": lambda sim: post(sim, "api/wallet_balance", {"key": KEY}),
}


@pytest.mark.parametrize("name", sorted(SITUATIONS))
def test_simulator_answers_like_the_docs(sim: Simulator, name: str) -> None:
    documented = case(name)
    status_code, body = SITUATIONS[name](sim)
    assert status_code == documented["http_status"], (name, body)
    for field, value in documented["body"].items():
        got = body.get(field, body.get("messege") if field == "message" else None)
        assert got is not None, f"{name}: the simulator leaves out {field!r} ({json.dumps(body)[:300]})"
        assert _kind(got) == _kind(value), f"{name}: {field!r} is {_kind(got)}, the docs show {_kind(value)}"
    if documented["expect"] == "balance":
        assert body["data"]["currency"] == documented["body"]["data"]["currency"]
    else:
        assert classify(status_code, body) == documented["expect"]
