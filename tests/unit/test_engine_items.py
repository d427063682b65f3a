"""Issue 22, items 1-9: the guarantees of "Retries, timeouts and who pays", on both operators.

Written before the one-engine rewrite (tests before fixes). Each test drives an operator the way
the task runner does (stand-in TI, in-memory ``task_state_store``, the real trigger on an event
loop) against simulators on 127.0.0.1, and asserts only what a user sees: the task's exception
and message, its XComs, and the API calls the simulator recorded. The real Airflow runs of the
same items are in ``tests/integration/test_engine_runs.py``; the fault-matrix rows in
``tests/FAULT_MATRIX.md``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, TaskDeferred

from modelslab_provider.client.aio import close_shared_session
from modelslab_provider.operators.batch import ModelsLabVideoBatchOperator
from modelslab_provider.operators.video import ModelsLabTextToVideoOperator
from modelslab_provider.simulator import Simulator
from tests.unit.test_operators import KEY, FakeStore
from tests.unit.test_operators import FakeTI as _FakeTI

BATCH = "/api/v6/video/batch"
SINGLE = "/api/v6/video/text2video"  # ModelsLabTextToVideoOperator's default
#: a trigger that should end within a few seconds gets this long before the test calls it stuck
STUCK_AFTER = 45.0


class FakeTI(_FakeTI):
    dag_id = "dag"
    run_id = "run"
    task_id = "generate"
    map_index = -1
    try_number = 1


def context(store: FakeStore | None = None, *, with_store: bool = True) -> dict[str, Any]:
    """A new try: a new TI; the same ``task_state_store`` when given; none at all (Airflow < 3.3)."""
    ctx: dict[str, Any] = {"ti": FakeTI()}
    if with_store:
        ctx["task_state_store"] = store if store is not None else FakeStore()
    return ctx


def connect(monkeypatch: pytest.MonkeyPatch, sim: Simulator, **extra: Any) -> None:
    """Point the default connection at ``sim`` (a retry after the connection moved calls it again)."""
    conn = {
        "conn_type": "modelslab",
        "password": KEY,
        "host": sim.url,
        "extra": {"timeout": 3, "max_retries": 1, **extra},
    }
    monkeypatch.setenv("AIRFLOW_CONN_MODELSLAB_DEFAULT", json.dumps(conn))


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[Simulator]:
    with Simulator(port=0, duration=0.3, retry_after=0.1) as simulator:
        connect(monkeypatch, simulator)
        yield simulator


@pytest.fixture
def other_sim() -> Iterator[Simulator]:
    """A second ModelsLab server: its ids start where the first one's did (same ids, other jobs)."""
    with Simulator(port=0, duration=0.3, retry_after=0.1) as simulator:
        yield simulator


FAST: dict[str, Any] = {"poll_interval": 0.05, "max_poll_interval": 0.2}


def batch_op(inputs: list[str] | None = None, **kwargs: Any) -> ModelsLabVideoBatchOperator:
    args: dict[str, Any] = {"model_id": "wan2.2", **FAST, **kwargs}
    if "requests" not in args:
        args["prompts"] = inputs
    return ModelsLabVideoBatchOperator(task_id="generate", **args)


def video_op(prompt: str, **kwargs: Any) -> ModelsLabTextToVideoOperator:
    return ModelsLabTextToVideoOperator(task_id="generate", prompt=prompt, **{**FAST, **kwargs})


def prompts(n: int, marker: str = "duration=0.3", tag: str = "shot") -> list[str]:
    return [f"{tag} {i} [sim:{marker}]" for i in range(n)]


def calls(sim: Simulator, path: str) -> list[dict[str, Any]]:
    return [r for r in sim.requests() if r["path"] == path]


def accepted(sim: Simulator, path: str) -> list[dict[str, Any]]:
    return [r for r in calls(sim, path) if r["status"] == 200 and r.get("job_id") is not None]


def batch_fetches(sim: Simulator) -> list[dict[str, Any]]:
    return [r for r in sim.requests() if r["path"].startswith(BATCH + "/fetch/")]


def single_fetches(sim: Simulator) -> list[dict[str, Any]]:
    return [r for r in sim.requests() if r["path"].startswith("/api/v6/video/fetch/")]


def run_trigger(trigger: Any, within: float = STUCK_AFTER) -> Any:
    """Run a trigger to its one event; a wait still running after ``within`` seconds fails the test."""

    async def go() -> Any:
        try:
            event = await asyncio.wait_for(trigger.run().__anext__(), within)
        except TimeoutError:
            raise AssertionError(f"the trigger was still waiting after {within:.0f} s") from None
        finally:
            await close_shared_session()
        return event.payload

    return asyncio.run(go())


def run_deferrable(task: Any, ctx: dict[str, Any], within: float = STUCK_AFTER) -> Any:
    """Execute and follow every deferral to its end, as the triggerer and a worker would."""
    method, kwargs = task.execute, {}
    for _ in range(50):
        try:
            return method(ctx, **kwargs)
        except TaskDeferred as deferred:
            event = run_trigger(deferred.trigger, within)
            method = getattr(task, deferred.method_name)
            kwargs = {"event": event, **(deferred.kwargs or {})}
    raise AssertionError("too many deferrals")


def first_try_defers(task: Any, ctx: dict[str, Any]) -> TaskDeferred:
    """The first try gets as far as deferring; then it dies (worker lost, timeout, clear)."""
    with pytest.raises(TaskDeferred) as info:
        task.execute(ctx)
    return info.value


# --------------------------------------------------------------------------- item 1


def test_item1_batch_execution_timeout_ends_a_deferred_wait(sim: Simulator) -> None:
    """A deferred batch ends at ``execution_timeout``, not at ``timeout`` (default 1 h)."""
    task = batch_op(prompts(3, "outcome=never"), deferrable=True, execution_timeout=timedelta(seconds=2))
    deferred = first_try_defers(task, context())
    event = run_trigger(deferred.trigger)
    with pytest.raises(AirflowException, match="execution_timeout") as info:
        getattr(task, deferred.method_name)(context(), event=event, **(deferred.kwargs or {}))
    assert not isinstance(info.value, AirflowFailException)  # a retry may still reconnect


def test_item1_video_execution_timeout_ends_a_deferred_wait(sim: Simulator) -> None:
    task = video_op("never [sim:outcome=never]", deferrable=True, execution_timeout=timedelta(seconds=2))
    with pytest.raises(AirflowException, match="execution_timeout") as info:
        run_deferrable(task, context())
    assert not isinstance(info.value, AirflowFailException)


# --------------------------------------------------------------------------- item 2


def test_item2_batch_retry_on_another_server_submits_anew(
    sim: Simulator, other_sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection moved to a server that has a batch with the same id: never adopt it."""
    store = FakeStore()
    first_try_defers(batch_op(prompts(3, tag="ours"), deferrable=True), context(store))
    [ours] = accepted(sim, BATCH)
    # someone else's batch on the other server, with the same id as ours
    connect(monkeypatch, other_sim)
    theirs = batch_op(prompts(3, tag="theirs"), wait_for_completion=False)
    ctx_theirs = context()
    theirs.execute(ctx_theirs)
    assert [str(i) for i in ctx_theirs["ti"].xcom["batch_ids"]] == [str(ours["job_id"])]  # same id

    ctx = context(store)
    urls = run_deferrable(batch_op(prompts(3, tag="ours"), deferrable=True), ctx)
    mine = [r for r in accepted(other_sim, BATCH) if "ours" in json.dumps(r["body"])]
    assert len(mine) == 1, "the retry adopted another server's batch instead of submitting anew"
    assert [str(i) for i in ctx["ti"].xcom["batch_ids"]] == [str(mine[0]["job_id"])]
    assert len(urls) == 3
    assert all(urls)
    theirs_jobs = {str(j) for j in other_sim.batches()[str(ours["job_id"])]["job_ids"]}
    assert not {str(r["request_id"]) for r in ctx["ti"].xcom["results"]} & theirs_jobs


def test_item2_video_retry_on_another_server_submits_anew(
    sim: Simulator, other_sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FakeStore()
    with pytest.raises(TaskDeferred):
        video_op("ours [sim:duration=0.3]", deferrable=True).execute(context(store))
    [ours] = accepted(sim, SINGLE)
    connect(monkeypatch, other_sim)
    video_op("theirs [sim:duration=0.3]", wait_for_completion=False).execute(context())
    assert [r["job_id"] for r in accepted(other_sim, SINGLE)] == [ours["job_id"]]  # same id there

    ctx = context(store)
    assert run_deferrable(video_op("ours [sim:duration=0.3]", deferrable=True), ctx)
    mine = [r for r in accepted(other_sim, SINGLE) if "ours" in r["body"]["prompt"]]
    assert len(mine) == 1, "the retry adopted another server's request instead of submitting anew"


def test_item2_batch_retry_after_the_batch_is_gone_submits_anew(sim: Simulator) -> None:
    """The stored batch id is not found (expired, or the server forgot it): submit anew."""
    store = FakeStore()
    first_try_defers(batch_op(prompts(3), deferrable=True), context(store))
    sim.reset()  # the server forgets its batches (ids keep increasing)
    urls = run_deferrable(batch_op(prompts(3), deferrable=True), context(store))
    assert len(urls) == 3
    assert all(urls)
    assert len(accepted(sim, BATCH)) == 1  # the new one, after the reset


def test_item2_video_retry_after_the_request_is_gone_submits_anew(sim: Simulator) -> None:
    store = FakeStore()
    with pytest.raises(TaskDeferred):
        video_op("gone [sim:duration=0.3]", deferrable=True).execute(context(store))
    sim.reset()
    assert run_deferrable(video_op("gone [sim:duration=0.3]", deferrable=True), context(store))
    assert len(accepted(sim, SINGLE)) == 1


def test_item2_batch_clear_after_a_failed_batch_submits_anew(sim: Simulator) -> None:
    """Every entry of the stored batch failed while nobody watched: a clear generates them again."""
    store = FakeStore()
    first_try_defers(batch_op(prompts(3, "duration=5"), deferrable=True), context(store))
    [batch] = accepted(sim, BATCH)
    for job in sim.batches()[str(batch["job_id"])]["job_ids"]:
        assert sim.fail(job)
    urls = run_deferrable(batch_op(prompts(3, "duration=5"), deferrable=True), context(store), within=60)
    assert len(accepted(sim, BATCH)) == 2
    assert len(urls) == 3
    assert all(urls)


def test_item2_batch_clear_after_a_refunded_batch_submits_anew(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stored batch's entries hit the batch time limit and were refunded: a clear pays anew."""
    with Simulator(port=0, duration=0.3, batch_entry_limit=0.5) as sim:
        connect(monkeypatch, sim)
        store = FakeStore()
        with pytest.raises(AirflowFailException, match="refunded"):
            batch_op(prompts(3, "duration=3")).execute(context(store))
        refunded = sim.batches()
        assert all(b["refunded"] for b in refunded.values()), refunded
        sim.configure(batch_entry_limit=480)  # the next batch has the time it needs
        urls = batch_op(prompts(3, "duration=3"), timeout=60).execute(context(store))
        assert len(accepted(sim, BATCH)) == 2
        assert len(urls) == 3
        assert all(urls)


def test_item2_video_clear_after_a_failed_request_submits_anew(sim: Simulator) -> None:
    store = FakeStore()
    with pytest.raises(TaskDeferred):
        video_op("fails meanwhile [sim:duration=5]", deferrable=True).execute(context(store))
    [job] = accepted(sim, SINGLE)
    assert sim.fail(job["job_id"])
    assert run_deferrable(video_op("fails meanwhile [sim:duration=5]", deferrable=True), context(store), 60)
    assert len(accepted(sim, SINGLE)) == 2


# --------------------------------------------------------------------------- item 3


def test_item3_without_a_state_store_a_partly_paid_batch_task_fails_for_good(sim: Simulator) -> None:
    """Below Airflow 3.3 (no ``task_state_store``): batch 2 of 2 refused after batch 1 was paid.

    Nothing keeps batch 1's id for a retry, so the try must fail for good (a retry would pay for
    batch 1 again), name what it paid for, and never call a retry safe.
    """
    requests = [{"prompt": f"part {i} [sim:duration=30]", "track_id": f"t22-part-{i}"} for i in range(11)]
    full = "submit_fault=429 submit_fault_times=1000 retry_after=0.1"
    requests += [{"prompt": f"part {i} [sim:{full}]", "track_id": f"t22-part-{i}"} for i in range(11, 21)]
    with pytest.raises(AirflowException) as info:
        batch_op(requests=requests, timeout=1).execute(context(with_store=False))
    message = str(info.value)
    [paid] = accepted(sim, BATCH)
    assert isinstance(info.value, AirflowFailException), f"a retry would pay again: {message}"
    assert str(paid["job_id"]) in message
    assert "t22-part-0" in message
    assert "t22-part-10" in message
    assert "retry" not in message.lower() or "safe" not in message.lower()
    assert "remembered" not in message


# --------------------------------------------------------------------------- item 4

SLOW_FETCH = "fault=slow slow_s=6 fault_on=1,2,3,4,5,6,7,8"


def test_item4_sync_batch_wait_cuts_its_fetches_at_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fetch slower than the task's timeout is cut there: no client retries past the deadline."""
    with Simulator(port=0, duration=30) as sim:
        connect(monkeypatch, sim, timeout=3, max_retries=3)
        with pytest.raises(AirflowException, match="timeout") as info:
            batch_op(prompts(3, SLOW_FETCH), timeout=1).execute(context())
        assert not isinstance(info.value, AirflowFailException)
        fetches = batch_fetches(sim)
        assert len(fetches) <= 1, f"{len(fetches)} batch fetches after a 1 s timeout (retries past it)"


def test_item4_sync_video_wait_cuts_its_fetches_at_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    with Simulator(port=0, duration=30) as sim:
        connect(monkeypatch, sim, timeout=3, max_retries=3)
        with pytest.raises(AirflowException, match="timeout") as info:
            video_op(f"slow fetch [sim:{SLOW_FETCH} eta=0]", timeout=1).execute(context())
        assert not isinstance(info.value, AirflowFailException)
        assert len(single_fetches(sim)) <= 1


# --------------------------------------------------------------------------- item 5

EMPTY_FOREVER = "duration=0.2 empty_polls=-1"


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferred"])
def test_item5_batch_empty_success_stops_after_five_polls(sim: Simulator, deferrable: bool) -> None:
    inputs = [prompts(1)[0], f"empty [sim:{EMPTY_FOREVER}]", prompts(1, tag="last")[0]]
    task = batch_op(inputs, deferrable=deferrable, timeout=15)
    with pytest.raises(AirflowException) as info:
        run_deferrable(task, context())
    assert isinstance(info.value, AirflowFailException), f"polled until the timeout: {info.value}"
    assert "no output URL" in str(info.value)
    assert len(batch_fetches(sim)) <= 8, len(batch_fetches(sim))


# --------------------------------------------------------------------------- item 6


@pytest.mark.parametrize("count", [1, 2, 3])
def test_item6_an_entry_with_another_model_id_is_refused_before_paying(sim: Simulator, count: int) -> None:
    requests = [{"prompt": f"cat {i}"} for i in range(count)]
    requests[0]["model_id"] = "ltx-2.3"
    with pytest.raises(AirflowFailException, match="model_id"):
        batch_op(requests=requests).execute(context())
    assert [r for r in sim.requests() if r["path"].startswith("/api/")] == []


# --------------------------------------------------------------------------- item 8

QUEUE_FULL_TWICE = "submit_fault=429 submit_fault_times=2 retry_after=0.3"


def test_item8_batch_queue_full_wait_is_deferred(sim: Simulator) -> None:
    """With ``deferrable=True`` a refused (429) batch submit waits in the triggerer, not the worker."""
    task = batch_op(prompts(3, f"duration=0.3 {QUEUE_FULL_TWICE}"), deferrable=True)
    ctx = context()
    first_try_defers(task, ctx)
    assert len(calls(sim, BATCH)) == 1, "the worker slept and resubmitted before deferring"
    urls = run_deferrable(batch_op(prompts(3, f"duration=0.3 {QUEUE_FULL_TWICE}"), deferrable=True), ctx)
    assert len(urls) == 3
    assert len(accepted(sim, BATCH)) == 1


def test_item8_video_queue_full_wait_is_deferred(sim: Simulator) -> None:
    with pytest.raises(TaskDeferred):
        video_op(f"queue [sim:duration=0.3 {QUEUE_FULL_TWICE}]", deferrable=True).execute(context())
    assert len(calls(sim, SINGLE)) == 1


# one deadline for the whole try: ~0.9 s of queue-full waits, then a 1.5 s video, in a 2 s budget
SLOW_QUEUE = "submit_fault=429 submit_fault_times=3 retry_after=0.3 duration=1.5 eta=0.1"


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferred"])
def test_item8_batch_queue_wait_and_video_wait_share_one_timeout(sim: Simulator, deferrable: bool) -> None:
    with pytest.raises(AirflowException, match="timeout") as info:
        run_deferrable(batch_op(prompts(3, SLOW_QUEUE), deferrable=deferrable, timeout=2), context())
    assert not isinstance(info.value, AirflowFailException)


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferred"])
def test_item8_video_queue_wait_and_video_wait_share_one_timeout(sim: Simulator, deferrable: bool) -> None:
    with pytest.raises(AirflowException, match="timeout") as info:
        run_deferrable(video_op(f"q [sim:{SLOW_QUEUE}]", deferrable=deferrable, timeout=2), context())
    assert not isinstance(info.value, AirflowFailException)


# --------------------------------------------------------------------------- item 9

#: ready 1 s after the submit, but the API says 30 s, and the task polls at most every 8 s
READY_EARLY = "duration=1 eta=30"
SLOW_POLLS: dict[str, Any] = {"poll_interval": 8, "max_poll_interval": 8, "timeout": 3}


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferred"])
def test_item9_batch_wait_polls_once_more_before_its_deadline(sim: Simulator, deferrable: bool) -> None:
    task = ModelsLabVideoBatchOperator(
        task_id="generate",
        model_id="wan2.2",
        prompts=prompts(3, READY_EARLY),
        deferrable=deferrable,
        **SLOW_POLLS,
    )
    urls = run_deferrable(task, context())
    assert len(urls) == 3
    assert all(urls)


@pytest.mark.parametrize("deferrable", [False, True], ids=["sync", "deferred"])
def test_item9_video_wait_polls_once_more_before_its_deadline(sim: Simulator, deferrable: bool) -> None:
    task = ModelsLabTextToVideoOperator(
        task_id="generate", prompt=f"early [sim:{READY_EARLY}]", deferrable=deferrable, **SLOW_POLLS
    )
    assert run_deferrable(task, context())
