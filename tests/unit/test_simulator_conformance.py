"""The simulator answers in the shapes ModelsLab documents (tests/fixtures/modelslab).

For each documented body the simulator is driven into the same situation over real HTTP on
127.0.0.1; its answer must carry every documented field with the documented JSON type and be
classified by the client exactly like the documented body. When they disagree, the docs win and
the simulator is fixed.
"""

from __future__ import annotations

import json
import time
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


# --------------------------------------------------------------------------- Video Batch API
# The batch pages have no fixture files yet; each test states the sentence of the docs it checks:
# https://docs.modelslab.com/video-api/video-batch (submit) and
# https://docs.modelslab.com/video-api/fetch-video-batch (fetch).

BATCH_KEY = "sk-conformance-batch-7d21"


def submit_batch(sim: Simulator, scenarios: list[str], key: str = BATCH_KEY, **extra: Any) -> dict[str, Any]:
    requests_ = [{"prompt": f"shot {i} [sim:{s}]", "track_id": f"conf-{i}"} for i, s in enumerate(scenarios)]
    status, body = post(
        sim, "api/v6/video/batch", {"key": key, "model_id": "wan2.2", "requests": requests_, **extra}
    )
    assert status == 200, body
    return body


def fetch_batch(sim: Simulator, batch_id: Any, key: str = BATCH_KEY) -> dict[str, Any]:
    status, body = post(sim, f"api/v6/video/batch/fetch/{batch_id}", {"key": key})
    assert status == 200, body
    return body


def test_batch_submit_answers_processing_and_one_batch_id() -> None:
    """video-batch: "returns one batch_id you can poll"; fetch-video-batch: "processing on submit"."""
    with Simulator(port=0) as sim:
        body = submit_batch(sim, ["duration=30"] * 3)
        assert body["status"] == "processing"
        assert isinstance(body["batch_id"], int)
        assert body["id"] == body["batch_id"]


def test_batch_fetch_status_results_and_output_in_request_order() -> None:
    """fetch-video-batch: processing while any runs; results = single fetch bodies + index, track_id."""
    with Simulator(port=0) as sim:
        batch_id = submit_batch(sim, ["polls=1", "polls=3", "polls=2"])["batch_id"]
        first = fetch_batch(sim, batch_id)  # a batch fetch is one poll of each entry
        assert first["status"] == "processing"
        assert first["id"] == first["batch_id"] == batch_id
        assert [r["index"] for r in first["results"]] == [0, 1, 2]
        assert [r["track_id"] for r in first["results"]] == ["conf-0", "conf-1", "conf-2"]
        assert [r["status"] for r in first["results"]] == ["success", "processing", "processing"]
        assert all("id" in r for r in first["results"])
        assert len(first["output"]) == 1
        fetch_batch(sim, batch_id)
        done = fetch_batch(sim, batch_id)
        assert done["status"] == "success"  # "success once every request has succeeded"
        outputs = [r["output"][0] for r in done["results"]]
        assert done["output"] == outputs  # "in request order"


def test_batch_all_failed_is_failed_and_timed_out_entries_are_refunded() -> None:
    """fetch-video-batch: "failed once every request has failed"; the 8-minute limit refunds."""
    with Simulator(port=0, batch_entry_limit=0.2) as sim:
        batch_id = submit_batch(sim, ["outcome=failed duration=0", "outcome=never", "outcome=never"])[
            "batch_id"
        ]
        time.sleep(0.3)
        body = fetch_batch(sim, batch_id)
        assert body["status"] == "failed"
        assert [r["status"] for r in body["results"]] == ["failed"] * 3
        assert [r.get("refunded") for r in body["results"]] == [False, True, True]


def test_an_unknown_or_foreign_or_gone_batch_is_not_found() -> None:
    """fetch-video-batch: an unknown batch_id, or another account's, answers failed "Batch not found"."""
    documented = {"status": "failed", "message": "Batch not found"}
    with Simulator(port=0) as sim:
        batch_id = submit_batch(sim, ["duration=30"] * 3)["batch_id"]
        assert fetch_batch(sim, batch_id + 1000) == documented
        assert fetch_batch(sim, batch_id, key="sk-someone-else") == documented
        gone = submit_batch(sim, ["duration=30 fault=notfound fault_on=2,3"] * 3)["batch_id"]
        assert fetch_batch(sim, gone)["status"] == "processing"
        assert fetch_batch(sim, gone) == documented  # the simulator's "expired" batch: same answer


@pytest.mark.parametrize(
    ("count", "model"), [(2, "wan2.2"), (21, "wan2.2"), (3, "cogvideox")], ids=["2", "21", "model"]
)
def test_a_batch_outside_the_limits_is_refused_and_nothing_queued(count: int, model: str) -> None:
    """video-batch: 3 to 20 requests on one of five models, validated as a whole before queueing."""
    with Simulator(port=0) as sim:
        requests_ = [{"prompt": f"shot {i}"} for i in range(count)]
        status, body = post(
            sim, "api/v6/video/batch", {"key": BATCH_KEY, "model_id": model, "requests": requests_}
        )
        assert status == 200
        assert body["status"] == "error"
        assert sim.stats()["batches_created"] == 0
        assert sim.jobs() == {}


def test_one_invalid_entry_refuses_the_whole_batch() -> None:
    with Simulator(port=0) as sim:
        requests_ = [{"prompt": "a"}, {"prompt": "b", "model_id": "ltx-2.3"}, {"prompt": "c"}]
        _, body = post(
            sim, "api/v6/video/batch", {"key": BATCH_KEY, "model_id": "wan2.2", "requests": requests_}
        )
        assert body["status"] == "error"
        assert "requests[1]" in body["message"]
        assert sim.jobs() == {}
