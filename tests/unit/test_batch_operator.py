"""ModelsLabVideoBatchOperator against the simulator on 127.0.0.1, with a stand-in task context.

Submits and fetches are counted on the simulator; deferrals run the real VideoFetchTrigger with the
job's submissions.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSkipException,
    TaskDeferred,
)

from modelslab_provider.client.batch import derive_track_id
from modelslab_provider.operators.batch import STATE_KEY, ModelsLabVideoBatchOperator
from modelslab_provider.simulator import Simulator
from modelslab_provider.triggers.video import VideoFetchTrigger
from modelslab_provider.version_compat import AIRFLOW_V_3_3_PLUS
from tests.unit.test_operators import KEY, FakeStore, needs_store, run_trigger
from tests.unit.test_operators import FakeTI as _FakeTI
from tests.unit.test_operators import server as server  # fixture
from tests.unit.test_operators import sim as sim  # fixture

FAST: dict[str, Any] = {"poll_interval": 0.05, "max_poll_interval": 0.2}


class FakeTI(_FakeTI):
    dag_id = "dag"
    run_id = "run"
    task_id = "generate"
    map_index = -1


def context(store: FakeStore | None = None) -> dict[str, Any]:
    return {"ti": FakeTI(), "task_state_store": store if store is not None else FakeStore()}


def op(**kwargs: Any) -> ModelsLabVideoBatchOperator:
    return ModelsLabVideoBatchOperator(task_id="generate", **{"model_id": "wan2.2", **FAST, **kwargs})


def prompts(n: int, marker: str = "duration=0.2") -> list[str]:
    return [f"shot {i} [sim:{marker}]" for i in range(n)]


def paths(sim: Simulator) -> list[str]:
    return [r["path"] for r in sim.requests()]


def batch_submits(sim: Simulator) -> list[dict[str, Any]]:
    return [r for r in sim.requests() if r["path"] == "/api/v6/video/batch"]


def run_deferrable(task: ModelsLabVideoBatchOperator, ctx: dict[str, Any]) -> Any:
    with pytest.raises(TaskDeferred) as info:
        task.execute(ctx)
    deferred = info.value
    assert isinstance(deferred.trigger, VideoFetchTrigger)
    kwargs = json.dumps(deferred.trigger.serialize()[1])  # JSON-only kwargs
    assert KEY not in kwargs
    event = run_trigger(deferred.trigger)  # type: ignore[arg-type]
    return getattr(task, deferred.method_name)(ctx, event=event)


def test_sync_batch_results_in_input_order(sim: Simulator) -> None:
    ctx = context()
    durations = [0.6, 0.2, 0.4, 0.2]  # finish out of order on purpose
    inputs = [f"shot {i} [sim:duration={d}]" for i, d in enumerate(durations)]
    urls = op(prompts=inputs, defaults={"resolution": 480}, webhook="https://hooks.example/ml").execute(ctx)
    ti = ctx["ti"]
    results = ti.xcom["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3]
    assert all(r["status"] == "success" for r in results)
    assert urls == [r["urls"] for r in results]
    assert len(batch_submits(sim)) == 1
    body = batch_submits(sim)[0]["body"]
    assert body["defaults"] == {"resolution": 480}
    assert body["webhook"] == "https://hooks.example/ml"
    assert [e["prompt"] for e in body["requests"]] == inputs
    assert [e["track_id"] for e in body["requests"]] == [
        derive_track_id("dag/run/generate/-1", i, "dag.generate") for i in range(4)
    ]
    batch_id = ti.xcom["batch_ids"][0]
    batch = sim.batches()[batch_id]
    for i, r in enumerate(results):
        assert r["request_id"] == str(batch["job_ids"][i])
        assert r["track_id"] == batch["track_ids"][i]
        assert r["batch_id"] == batch_id
    # only batch fetches, never one per video
    assert not [p for p in paths(sim) if p.startswith("/api/v6/video/fetch/")]
    assert sim.stats()["batch_fetches"] >= 1
    if AIRFLOW_V_3_3_PLUS:  # the ids are remembered for a retry right after the submit
        assert ctx["task_state_store"].data[STATE_KEY]["jobs"][0]["id"] == batch_id
    assert KEY not in json.dumps(ti.xcom)


def test_deferred_21_inputs_make_two_balanced_batches_polled_by_one_trigger(sim: Simulator) -> None:
    ctx = context()
    urls = run_deferrable(op(prompts=prompts(21), deferrable=True), ctx)
    assert len(urls) == 21
    sizes = [len(r["body"]["requests"]) for r in batch_submits(sim)]
    assert sizes == [11, 10]
    results = ctx["ti"].xcom["results"]
    assert [r["index"] for r in results] == list(range(21))
    assert [r["batch_id"] for r in results] == [ctx["ti"].xcom["batch_ids"][0]] * 11 + [
        ctx["ti"].xcom["batch_ids"][1]
    ] * 10
    stats = sim.stats()
    assert stats["fetches"] == 0  # no single fetch
    rounds = max(stats["batch_fetches_per_batch"].values())
    assert stats["batch_fetches"] <= 2 * rounds  # one fetch per batch per round


def test_one_failed_entry_fails_the_task_after_all_finished(sim: Simulator) -> None:
    inputs = prompts(3)
    inputs[1] = "shot 1 [sim:duration=0.2 outcome=failed]"
    ctx = context()
    with pytest.raises(
        AirflowFailException,
        match=r"1 of 3 ModelsLab videos failed: input 1 .*not refunded.*Processing failed",
    ):
        op(prompts=inputs).execute(ctx)
    results = ctx["ti"].xcom["results"]
    assert [r["status"] for r in results] == ["success", "failed", "success"]
    assert results[0]["urls"]
    assert results[2]["urls"]


def test_partial_failure_allowed_returns_the_successful_inputs_only(sim: Simulator) -> None:
    """Issue 22.7: return_value maps one downstream task per video; 'results' keeps every input."""
    inputs = prompts(3)
    inputs[1] = "shot 1 [sim:duration=0.2 outcome=failed]"
    ctx = context()
    urls = op(prompts=inputs, allow_partial_failure=True).execute(ctx)
    results = ctx["ti"].xcom["results"]
    assert [r["status"] for r in results] == ["success", "failed", "success"]
    assert urls == [results[0]["urls"], results[2]["urls"]]
    assert all(u for u in urls)


def test_entry_past_the_batch_limit_is_failed_and_refunded(sim: Simulator) -> None:
    sim.configure(batch_entry_limit=0.5)
    inputs = prompts(3)
    inputs[0] = "shot 0 [sim:outcome=never]"
    ctx = context()
    urls = op(prompts=inputs, allow_partial_failure=True).execute(ctx)
    assert urls is not None
    assert len(urls) == 2
    first = ctx["ti"].xcom["results"][0]
    assert first["status"] == "failed"
    assert first["refunded"] is True
    assert "refunded" in first["message"]
    assert sim.stats()["batch_refunds"] == 1


def test_submit_5xx_is_not_repeated_and_names_the_track_ids(sim: Simulator) -> None:
    inputs = prompts(3, "duration=0.2 submit_fault=503")
    with pytest.raises(AirflowFailException, match="may or may not have been accepted") as info:
        op(prompts=inputs).execute(context())
    assert len(batch_submits(sim)) == 1  # exactly one paid call
    assert derive_track_id("dag/run/generate/-1", 2, "dag.generate") in str(info.value)


def test_submit_429_is_repeated_once_the_queue_has_room(sim: Simulator) -> None:
    inputs = prompts(3, "duration=0.2 submit_fault=429 retry_after=0.05")
    urls = op(prompts=inputs).execute(context())
    assert urls is not None
    assert len(urls) == 3
    assert len(batch_submits(sim)) == 2  # refused (never queued), then accepted
    assert sim.stats()["batches_created"] == 1


def test_refused_batch_fails_at_once(sim: Simulator) -> None:
    sim.configure(api_key="sk-some-other-account-key")
    with pytest.raises(
        AirflowFailException,
        match=r"Invalid API key.*Check the API Key \(password field\) of connection '[a-z_]+'\. The batch",
    ):
        op(prompts=prompts(3)).execute(context())
    assert len(batch_submits(sim)) == 1
    assert sim.stats()["batches_created"] == 0


def test_simulator_validates_the_whole_batch(sim: Simulator) -> None:
    """What ModelsLab documents, as the simulator plays it: one bad entry refuses the batch."""
    import requests

    url = f"{sim.url}/api/v6/video/batch"
    good = [{"prompt": "a"}, {"prompt": "b"}]
    cases = [
        ({"model_id": "wan2.2", "requests": good}, "3 to 20 entries"),
        ({"model_id": "wan2.2", "requests": good * 11}, "3 to 20 entries"),
        ({"model_id": "veo-3.1", "requests": good + good}, "Model not supported"),
        ({"model_id": "wan2.2", "requests": [*good, {"seed": 1}]}, r"requests\[2\]: prompt is required"),
        (
            {"model_id": "wan2.2", "requests": [*good, {"prompt": "c", "model_id": "ltx-2.3"}]},
            "same|must use",
        ),
    ]
    for body, message in cases:
        answer = requests.post(url, json={"key": KEY, **body}, timeout=10).json()
        assert answer["status"] == "error"
        assert re.search(message, answer["message"])
    assert sim.stats()["batches_created"] == 0
    # defaults fill the prompt; the top-level track_id is inherited by entries without their own
    body = {"model_id": "wan2.2", "requests": [{"track_id": "own"}, {}, {}], "defaults": {"prompt": "d"}}
    answer = requests.post(url, json={"key": KEY, **body, "track_id": "top"}, timeout=10).json()
    assert answer["status"] == "processing"
    assert sim.batches()[str(answer["batch_id"])]["track_ids"] == ["own", "top", "top"]
    other = requests.post(f"{url}/fetch/{answer['batch_id']}", json={"key": "sk-another-account"}, timeout=10)
    assert other.json() == {"status": "failed", "message": "Batch not found"}


def test_bad_inputs_fail_before_any_call(sim: Simulator) -> None:
    with pytest.raises(AirflowFailException, match="Input 1 has neither"):
        op(requests=[{"prompt": "a"}, {"seed": 3}, {"prompt": "c"}]).execute(context())
    with pytest.raises(AirflowFailException, match="not supported by the ModelsLab Video Batch API"):
        op(model_id="veo-3.1", prompts=prompts(3)).execute(context())
    # a bad input 25 fails before batch 1 (inputs 0..12) is paid for
    many: list[dict[str, Any]] = [{"prompt": f"p{i}"} for i in range(25)]
    many[24] = {"prompt": "p24", "key": "oops"}
    with pytest.raises(AirflowFailException, match="must not contain"):
        op(requests=many).execute(context())
    assert paths(sim) == []


def test_empty_input_skips(sim: Simulator) -> None:
    with pytest.raises(AirflowSkipException):
        op(prompts=[]).execute(context())
    assert paths(sim) == []


def test_fewer_than_three_go_to_the_single_endpoint(
    sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    ctx = context()
    urls = op(
        requests=[
            {"prompt": "a [sim:duration=0.2]"},
            {"init_image": "https://img.example/c.png", "prompt": "b"},
        ],
        track_id="campaign-7",
        webhook="https://hooks.example/ml",
    ).execute(ctx)
    assert urls is not None
    assert len(urls) == 2
    assert all(urls)
    submitted = [r for r in sim.requests() if r["path"].endswith(("_ultra",))]
    assert [r["path"] for r in submitted] == [
        "/api/v6/video/text2video_ultra",
        "/api/v6/video/img2video_ultra",
    ]
    assert all(r["body"]["track_id"] == "campaign-7" for r in submitted)
    assert all(r["body"]["webhook"] == "https://hooks.example/ml" for r in submitted)
    assert all(r["body"]["model_id"] == "wan2.2" for r in submitted)
    assert "full single-video price" in capsys.readouterr().out
    assert len(ctx["ti"].xcom["request_ids"]) == 2
    assert batch_submits(sim) == []


def test_fewer_than_three_without_a_single_endpoint_fails_at_once(sim: Simulator) -> None:
    with pytest.raises(
        AirflowFailException, match="documents no single-video endpoint for model 'h3-minimax-t2v'"
    ):
        op(model_id="h3-minimax-t2v", prompts=["a", "b"]).execute(context())
    assert paths(sim) == []


@needs_store
def test_retry_after_a_lost_deferral_reconnects_instead_of_submitting(sim: Simulator) -> None:
    store = FakeStore()
    task = op(prompts=prompts(25, "duration=0.3"), deferrable=True)
    with pytest.raises(TaskDeferred):
        task.execute(context(store))  # the try dies while deferred (e.g. a timeout, then a retry)
    assert len(batch_submits(sim)) == 2
    ctx = context(store)
    urls = run_deferrable(op(prompts=prompts(25, "duration=0.3"), deferrable=True), ctx)
    assert len(urls) == 25
    assert len(batch_submits(sim)) == 2  # the retry paid for nothing
    assert ctx["ti"].xcom["batch_ids"] == [j["id"] for j in store.data[STATE_KEY]["jobs"]]


def test_one_trigger_serves_batches_and_single_videos() -> None:
    """A batch wait is the provider's one trigger with a job list; the old classpath still loads."""
    import importlib

    from modelslab_provider.client.errors import ModelsLabConfigError

    jobs = [{"id": "5", "kind": "batch", "size": 3}]
    classpath, kwargs = VideoFetchTrigger(jobs=jobs, deadline=1e10).serialize()
    assert classpath == "modelslab_provider.triggers.video.VideoFetchTrigger"
    assert kwargs["jobs"][0]["id"] == "5"
    assert "request_id" not in kwargs
    # a batch task deferred under 'triggers.batch.BatchFetchTrigger' before an upgrade resumes after it
    module, _, name = "modelslab_provider.triggers.batch.BatchFetchTrigger".rpartition(".")
    old = getattr(importlib.import_module(module), name)
    assert old(**kwargs).serialize() == (classpath, kwargs)
    for wrong in ({}, {"request_id": "7", "jobs": jobs}):
        with pytest.raises(ModelsLabConfigError, match=r"request_id .* or jobs"):
            VideoFetchTrigger(**wrong)


def test_unknown_batch_fails_the_wait(sim: Simulator) -> None:
    trigger = VideoFetchTrigger(
        jobs=[{"id": "99999", "kind": "batch", "size": 3}], poll_policy={"min_interval": 0.05}
    )
    event = run_trigger(trigger)  # type: ignore[arg-type]
    assert event["status"] == "error"
    assert event["error_type"] == "not_found"
    assert "Batch not found" in event["message"]
    with pytest.raises(AirflowFailException, match="Batch not found"):
        op(prompts=prompts(3)).execute_complete(context(), event)


def test_timeout_is_retryable(sim: Simulator) -> None:
    with pytest.raises(AirflowException, match="timeout of 1 s") as info:
        op(prompts=prompts(3, "outcome=never"), timeout=1).execute(context())
    assert not isinstance(info.value, AirflowFailException)


def test_a_queue_that_stays_full_fails_retryably_within_the_timeout(sim: Simulator) -> None:
    inputs = prompts(3, "submit_fault=429 submit_fault_times=1000 retry_after=0.1")
    with pytest.raises(AirflowException, match="queue is full") as info:
        op(prompts=inputs, timeout=0.6).execute(context())
    assert not isinstance(info.value, AirflowFailException)
    assert "Nothing was submitted" in str(info.value)
    assert 2 <= len(batch_submits(sim)) <= 10  # waited and resubmitted, then gave up at the budget
    assert sim.stats()["batches_created"] == 0


def test_a_single_submit_failing_ambiguously_names_its_track_id(sim: Simulator) -> None:
    with pytest.raises(AirflowFailException, match="may or may not have been accepted") as info:
        op(prompts=prompts(2, "duration=0.2 submit_fault=503")).execute(context())
    assert derive_track_id("dag/run/generate/-1", 0, "dag.generate") in str(info.value)
    assert [p for p in paths(sim) if "fetch" not in p] == ["/api/v6/video/text2video_ultra"]


def test_a_batch_wait_logs_progress_at_info_only_on_news(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16: rounds that change nothing log at DEBUG; the first and one with a transient error at INFO."""
    from tests.unit.test_trigger_progress_log import Levels

    task = op(prompts=prompts(3, "duration=1.2 fault=503 fault_on=3"), deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(context())
    levels = Levels()
    monkeypatch.setattr(VideoFetchTrigger, "log", property(lambda self: levels))
    assert run_trigger(deferred.value.trigger)["status"] == "success"  # type: ignore[arg-type]
    rounds = [(lvl, text) for lvl, text in levels.lines if text.startswith("ModelsLab: ")]
    info = [text for lvl, text in rounds if lvl == "info"]
    assert len(rounds) >= 5, levels.lines
    # the first round, and the one whose fetch failed; every other round said nothing new
    assert len(info) == 2, rounds
    assert "round 1;" in info[0] or "round 1)" in info[0]
    assert "transient error" in info[1]
    assert all(lvl == "debug" for lvl, text in rounds if text not in info)
