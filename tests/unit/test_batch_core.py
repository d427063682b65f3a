"""The pure Video Batch core: chunking, defaults, track ids, fetch normalisation, ordering, failures."""

from __future__ import annotations

from typing import Any

import pytest

from modelslab_provider.client import batch as b
from modelslab_provider.client.core import ClientSettings, Status
from modelslab_provider.client.errors import (
    ModelsLabAuthError,
    ModelsLabConfigError,
    ModelsLabJobFailedError,
    ModelsLabNotFoundError,
    ModelsLabRateLimitError,
    ModelsLabRequestError,
    ModelsLabTimeoutError,
    ModelsLabTransientError,
)
from modelslab_provider.client.policy import Action, PollPolicy, RetryPolicy, never_reached

SETTINGS = ClientSettings(api_key="sk-batch-core-key-123", base_url="http://127.0.0.1:9")


# ----------------------------------------------------------------------------- chunking


@pytest.mark.parametrize(
    ("count", "sizes"),
    [
        (0, []),
        (3, [3]),
        (20, [20]),
        (21, [11, 10]),
        (40, [20, 20]),
        (41, [14, 14, 13]),
        (60, [20, 20, 20]),
        (61, [16, 15, 15, 15]),
    ],
)
def test_batch_sizes_are_balanced(count: int, sizes: list[int]) -> None:
    assert b.batch_sizes(count) == sizes


@pytest.mark.parametrize("count", range(3, 250))
def test_batch_sizes_invariants(count: int) -> None:
    sizes = b.batch_sizes(count)
    assert sum(sizes) == count
    assert all(b.BATCH_MIN <= s <= b.BATCH_MAX for s in sizes)
    assert max(sizes) - min(sizes) <= 1
    assert len(sizes) == -(-count // b.BATCH_MAX)  # as few batches as the maximum allows


@pytest.mark.parametrize("count", [1, 2])
def test_batch_sizes_refuse_fewer_than_three(count: int) -> None:
    with pytest.raises(ModelsLabConfigError, match="at least 3"):
        b.batch_sizes(count)


def test_plan_keeps_input_order_and_offsets() -> None:
    entries = [{"prompt": f"p{i}"} for i in range(21)]
    ids = [f"t{i}" for i in range(21)]
    plans = b.plan_batches(entries, ids)
    assert [(p.offset, p.size) for p in plans] == [(0, 11), (11, 10)]
    assert [e["prompt"] for p in plans for e in p.entries] == [f"p{i}" for i in range(21)]
    assert list(plans[1].indexes) == list(range(11, 21))
    assert plans[1].track_ids[0] == "t11"


# ----------------------------------------------------------------------------- request building


def test_entries_from_prompts_and_requests() -> None:
    assert b.entries_from(prompts=["a", "b"]) == [{"prompt": "a"}, {"prompt": "b"}]
    assert b.entries_from(requests=[{"init_image": "https://x/y.png"}]) == [{"init_image": "https://x/y.png"}]
    with pytest.raises(ModelsLabConfigError, match="exactly one"):
        b.entries_from(prompts=["a"], requests=[{}])
    with pytest.raises(ModelsLabConfigError, match="exactly one"):
        b.entries_from()
    with pytest.raises(ModelsLabConfigError, match="rendered to a string"):
        b.entries_from(prompts="['a', 'b']")
    with pytest.raises(ModelsLabConfigError, match=r"prompts\[1\]"):
        b.entries_from(prompts=["a", ""])
    with pytest.raises(ModelsLabConfigError, match=r"requests\[0\]"):
        b.entries_from(requests=["a prompt"])


def _plan(entries: list[dict[str, Any]], ids: list[str] | None = None) -> b.BatchPlan:
    return b.plan_batches(entries, ids or [f"t{i}" for i in range(len(entries))])[0]


def test_defaults_sent_under_entries_and_entry_wins() -> None:
    entries = [{"prompt": "a", "resolution": 720}, {"prompt": "b"}, {"init_image": "https://x/i.png"}]
    defaults = {"resolution": 480, "num_frames": 81, "prompt": "fallback prompt"}
    body = b.build_batch_body("wan2.2", _plan(entries), defaults=defaults, webhook="https://hooks.example/ml")
    assert body["model_id"] == "wan2.2"
    assert body["defaults"] == defaults
    assert body["webhook"] == "https://hooks.example/ml"
    assert "key" not in body
    assert [r.get("resolution") for r in body["requests"]] == [720, None, None]
    # what ModelsLab runs: the entry's own value wins over the same key in defaults
    assert b.merged_entry(entries[0], defaults)["resolution"] == 720
    assert b.merged_entry(entries[1], defaults)["resolution"] == 480
    # an image entry without a prompt is valid: defaults or the image path cover it
    assert body["requests"][2]["init_image"] == "https://x/i.png"


def test_every_entry_carries_its_track_id() -> None:
    entries = [{"prompt": "a", "track_id": "own"}, {"prompt": "b"}, {"prompt": "c"}]
    ids = b.effective_track_ids(entries, None, None, seed="dag/run/task/-1", prefix="dag.task")
    assert ids[0] == "own"
    assert ids[1] == b.derive_track_id("dag/run/task/-1", 1, "dag.task")
    assert ids[1] != ids[2]
    # deterministic: the same task instance derives the same ids on every try
    assert b.effective_track_ids(entries, None, None, seed="dag/run/task/-1", prefix="dag.task") == ids
    assert b.effective_track_ids(entries, None, None, seed="dag/run2/task/-1")[1] != ids[1]
    body = b.build_batch_body("wan2.2", _plan(entries, ids))
    assert [r["track_id"] for r in body["requests"]] == ids


def test_top_level_and_default_track_ids_are_inherited() -> None:
    entries = [{"prompt": "a", "track_id": "own"}, {"prompt": "b"}, {"prompt": "c"}]
    assert b.effective_track_ids(entries, None, "top", seed="s") == ["own", "top", "top"]
    assert b.effective_track_ids(entries, {"track_id": "dflt"}, "top", seed="s") == ["own", "dflt", "dflt"]
    body = b.build_batch_body("wan2.2", _plan(entries), track_id="top")
    assert body["track_id"] == "top"


@pytest.mark.parametrize(
    ("entries", "defaults", "match"),
    [
        ([{"prompt": "a"}, {"prompt": "b"}, {"seed": 1}], None, "Input 2 has neither"),
        (
            [{"prompt": "a"}, {"prompt": "b"}, {"prompt": "c", "key": "x"}],
            None,
            r"Input 2 must not contain \['key'\]",
        ),
        ([{"prompt": "a"}] * 3, {"api_key": "x"}, "defaults must not contain"),
        (
            [{"prompt": "a"}, {"prompt": "b", "model_id": "ltx-2.3"}, {"prompt": "c"}],
            None,
            "model_id 'ltx-2.3'",
        ),
    ],
)
def test_invalid_entries_are_refused_before_any_call(
    entries: list[dict[str, Any]], defaults: dict[str, Any] | None, match: str
) -> None:
    with pytest.raises(ModelsLabConfigError, match=match):
        b.build_batch_body("wan2.2", _plan(entries), defaults=defaults)


def test_model_must_be_a_documented_batch_model() -> None:
    for model in b.BATCH_MODELS:
        assert b.build_batch_body(model, _plan([{"prompt": "x"}] * 3))["model_id"] == model
    with pytest.raises(ModelsLabConfigError, match="not supported by the ModelsLab Video Batch API"):
        b.build_batch_body("veo-3.1", _plan([{"prompt": "x"}] * 3))


def test_batch_size_bounds_in_body() -> None:
    with pytest.raises(ModelsLabConfigError, match="3 to 20"):
        b.build_batch_body("wan2.2", b.BatchPlan(0, 0, ({"prompt": "x"},) * 2, ("a", "b")))


def test_submit_and_fetch_requests() -> None:
    body = b.build_batch_body("wan2.2", _plan([{"prompt": "x"}] * 3))
    submit = b.build_batch_submit(SETTINGS, body)
    assert submit.url == "http://127.0.0.1:9/api/v6/video/batch"
    assert submit.idempotent is False
    assert submit.body["key"] == SETTINGS.api_key
    assert SETTINGS.api_key not in repr(submit)
    fetch = b.build_batch_fetch(SETTINGS, 48213)
    assert fetch.url == "http://127.0.0.1:9/api/v6/video/batch/fetch/48213"
    assert fetch.idempotent is True


def test_single_endpoint_for_too_few_inputs() -> None:
    assert b.single_endpoint("wan2.2", {"prompt": "x"}) == "text2video_ultra"
    assert b.single_endpoint("ltx-2.3", {"init_image": "https://x/i.png"}) == "img2video_ultra"
    with pytest.raises(
        ModelsLabConfigError, match="documents no single-video endpoint for model 'h3-minimax-t2v'"
    ):
        b.single_endpoint("h3-minimax-t2v", {"prompt": "x"})


# ----------------------------------------------------------------------------- responses


def test_parse_submit() -> None:
    assert b.parse_batch_submit({"status": "processing", "id": 48213, "batch_id": 48213}).batch_id == "48213"
    assert b.parse_batch_submit({"status": "processing", "batch_id": "77"}).batch_id == "77"
    with pytest.raises(ModelsLabRequestError, match=r"nothing was queued.*prompt is required"):
        b.parse_batch_submit({"status": "error", "message": "requests[2]: prompt is required"})
    with pytest.raises(ModelsLabAuthError):
        b.parse_batch_submit({"status": "error", "message": "Invalid API key"})
    with pytest.raises(ModelsLabRateLimitError):
        b.parse_batch_submit({"status": "error", "message": "Rate limit exceeded"}, 429)


def _result(index: int, status: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status, "id": 9000 + index, "index": index, "track_id": f"t{index}"}
    if status == "success":
        body["output"] = [f"https://cdn.example/{index}.mp4"]
    elif status == "processing":
        body["output"] = ""
    body.update(extra)
    return body


def test_fetch_orders_entries_by_index_and_reads_refunded() -> None:
    data = {
        "status": "success",
        "id": 5,
        "batch_id": 5,
        "output": ["https://cdn.example/0.mp4", "https://cdn.example/2.mp4"],
        "results": [
            _result(2, "success"),
            _result(1, "failed", message="Processing failed: timeout", refunded=True),
            _result(0, "success"),
        ],
    }
    status = b.parse_batch_fetch(data, "5", 3)
    assert status.finished
    assert [e.index for e in status.entries] == [0, 1, 2]
    assert [e.status for e in status.entries] == [Status.DONE, Status.FAILED, Status.DONE]
    assert status.entries[0].urls == ("https://cdn.example/0.mp4",)
    assert status.entries[1].refunded is True
    assert status.entries[1].urls == ()
    assert status.entries[1].message == "Processing failed: timeout"
    assert status.entries[2].track_id == "t2"
    assert status.entries[2].request_id == "9002"


def test_fetch_processing_is_not_finished_whatever_the_top_level_says() -> None:
    data = {
        "status": "success",
        "results": [_result(0, "success"), _result(1, "processing"), _result(2, "success")],
    }
    status = b.parse_batch_fetch(data, "5", 3)
    assert not status.finished
    assert status.running == 1
    # a short results list is not finished either
    assert not b.parse_batch_fetch(
        {"status": "processing", "results": [_result(0, "success")]}, "5", 3
    ).finished


def test_fetch_batch_not_found_and_call_errors() -> None:
    with pytest.raises(ModelsLabNotFoundError, match=r"batch 77.*Batch not found"):
        b.parse_batch_fetch({"status": "failed", "message": "Batch not found"}, "77", 3)
    with pytest.raises(ModelsLabAuthError):
        b.parse_batch_fetch({"status": "error", "message": "Invalid API key"}, "77", 3)


def test_fetch_all_failed_without_results_fails_every_entry() -> None:
    status = b.parse_batch_fetch(
        {"status": "failed", "message": "all gone", "results": [_result(0, "failed")]}, "7", 3
    )
    assert status.finished
    assert [e.status for e in status.entries] == [Status.FAILED] * 3
    assert status.entries[2].message == "all gone"


def test_entry_with_error_body_is_an_entry_failure_not_a_call_error() -> None:
    data = {
        "status": "processing",
        "results": [_result(0, "error", message="Invalid API key"), _result(1, "processing")],
    }
    status = b.parse_batch_fetch(data, "7", 2)
    assert status.entries[0].status is Status.FAILED
    assert "Invalid API key" in status.entries[0].message


def test_entry_urls_only_http() -> None:
    data = {
        "status": "success",
        "results": [_result(0, "success", output=["file:///etc/passwd", "https://ok/x.mp4"])],
    }
    assert b.parse_batch_fetch(data, "7", 1).entries[0].urls == ("https://ok/x.mp4",)
    entry = b.EntryResult.from_dict({"index": 0, "status": "done", "urls": ["javascript:x", "https://a/b"]})
    assert entry.urls == ("https://a/b",)


# ----------------------------------------------------------------------------- assembly


def _jobs() -> list[dict[str, Any]]:
    return [
        {"id": "10", "offset": 0, "size": 3, "track_ids": ["a", "b", "c"]},
        {"id": "11", "offset": 3, "size": 3, "track_ids": ["d", "e", "f"]},
    ]


def _done(i: int) -> b.EntryResult:
    return b.EntryResult(i, Status.DONE, "success", f"t{i}", str(100 + i), (f"https://cdn/{i}.mp4",))


def test_assemble_in_input_order_with_partial_failure() -> None:
    failed = b.EntryResult(1, Status.FAILED, "failed", "e", "201", (), "Processing failed: timeout", True)
    finished = {
        "11": (_done(2), failed, _done(0)),  # out of order on purpose
        "10": (_done(0), _done(1), _done(2)),
    }
    results = b.assemble(_jobs(), finished, 6)
    assert [r.index for r in results] == list(range(6))
    assert [r.status for r in results] == ["success", "success", "success", "success", "failed", "success"]
    assert results[3].urls == ("https://cdn/0.mp4",)
    assert results[3].job_id == "11"
    assert results[4].refunded is True
    assert results[4].urls == ()
    summary = b.failure_summary(results)
    assert summary == "input 4 (track_id e, request 201, refunded): Processing failed: timeout"
    assert results[4].to_dict() == {
        "index": 4,
        "request_id": "201",
        "status": "failed",
        "urls": [],
        "message": "Processing failed: timeout",
        "refunded": True,
        "track_id": "e",
        "batch_id": "11",
    }


def test_assemble_missing_entry_counts_as_failed() -> None:
    results = b.assemble(_jobs(), {"10": (_done(0), _done(1), _done(2))}, 6)
    assert [r.status for r in results[3:]] == ["failed"] * 3
    assert results[3].track_id == "d"
    with pytest.raises(ValueError, match="belong to no submitted job"):
        b.assemble(_jobs()[:1], {}, 6)


# ----------------------------------------------------------------------------- paid-call policy and waiting


def test_paid_calls_repeat_only_when_provably_not_sent() -> None:
    assert never_reached(ModelsLabTransientError("refused"))  # connect error: no status, not ambiguous
    assert never_reached(ModelsLabRateLimitError("429", status_code=429))
    assert not never_reached(ModelsLabTransientError("HTTP 500", status_code=500))
    assert not never_reached(ModelsLabTransientError("HTTP 503", status_code=503))
    assert not never_reached(ModelsLabTransientError("read timeout", ambiguous=True))
    assert not never_reached(ModelsLabRequestError("bad"))
    policy = RetryPolicy(max_attempts=4)  # a paid call is not idempotent: only never_reached repeats
    assert (
        policy.delay(1, ModelsLabTransientError("HTTP 502", status_code=502), idempotent=False, jitter=0)
        is None
    )
    assert policy.delay(1, ModelsLabTransientError("refused"), idempotent=False, jitter=0) is not None


def test_batch_wait_rounds() -> None:
    wait = b.BatchWait(jobs={"1": 3, "2": 3}, started_at=0.0, deadline=100.0, poll=PollPolicy(min_interval=1))
    assert wait.pending() == ["1", "2"]
    wait.on_status("1", (_done(0), _done(1), _done(2)))
    running = b.EntryResult(2, Status.RUNNING, "processing")
    wait.on_status("2", (_done(0), _done(1), running))
    decision = wait.next_round(10.0)
    assert decision.action is Action.WAIT
    assert 1 <= decision.delay <= 90
    assert wait.pending() == ["2"]  # a finished batch is never fetched again
    wait.on_status("2", (_done(0), _done(1), _done(2)))
    assert wait.next_round(20.0).action is Action.DONE
    assert wait.fetches == 3
    assert wait.rounds == 2


def test_batch_wait_errors_and_deadline() -> None:
    wait = b.BatchWait(jobs={"1": 3}, started_at=0.0, deadline=50.0, poll=PollPolicy(min_interval=1))
    decision = wait.next_round(5.0, [ModelsLabTransientError("HTTP 502", status_code=502)])
    assert decision.action is Action.WAIT  # polls are free: transient errors only delay
    decision = wait.next_round(6.0, [ModelsLabNotFoundError("Batch not found")])
    assert decision.action is Action.FAIL
    assert isinstance(decision.error, ModelsLabNotFoundError)
    decision = wait.next_round(60.0)
    assert decision.action is Action.FAIL
    assert isinstance(decision.error, ModelsLabTimeoutError)
    assert "8 minutes" in str(decision.error)
    assert not isinstance(decision.error, ModelsLabJobFailedError)
