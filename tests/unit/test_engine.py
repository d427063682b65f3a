"""The paid-job engine's own parts: the record below Airflow 3.3, its pure rules, batch parity.

The user-visible items of issue 22 are proven in ``test_engine_items.py`` (operators against
simulators) and ``tests/integration/test_engine_runs.py`` (real Airflow runs); here are the
engine's decisions that those do not reach on this Airflow line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred

from modelslab_provider.client.batch import EntryResult
from modelslab_provider.client.core import Status
from modelslab_provider.client.job import describe, records_from_store, try_deadline, verdict
from modelslab_provider.client.policy import LAST_POLL_LEAD, PollPolicy, WaitTracker
from modelslab_provider.client.submit import make_track_id
from modelslab_provider.jobs import store as job_store
from modelslab_provider.operators.batch import ModelsLabVideoBatchOperator
from modelslab_provider.operators.video import ModelsLabTextToVideoOperator
from modelslab_provider.simulator import Simulator
from tests.unit.test_engine_items import FakeTI, accepted, connect, prompts, run_deferrable

BATCH = "/api/v6/video/batch"
FAST: dict[str, Any] = {"poll_interval": 0.05, "max_poll_interval": 0.2}


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[Simulator]:
    with Simulator(port=0, duration=0.3, retry_after=0.1) as simulator:
        connect(monkeypatch, simulator)
        yield simulator


class FakeVariables:
    """Airflow's Variable API as the task SDK offers it (get / set / delete), in memory."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.descriptions: dict[str, str | None] = {}

    def get(self, key: str, default: Any = None, deserialize_json: bool = False) -> Any:
        if key not in self.data:
            return default
        return json.loads(self.data[key]) if deserialize_json else self.data[key]

    def set(self, key: str, value: Any, description: str | None = None, serialize_json: bool = False) -> None:
        self.data[key] = json.dumps(value) if serialize_json else value
        self.descriptions[key] = description

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


@pytest.fixture
def below_3_3(monkeypatch: pytest.MonkeyPatch) -> FakeVariables:
    """Airflow 3.1 / 3.2: no ``task_state_store``; Variables through the task SDK."""
    variables = FakeVariables()
    monkeypatch.setattr(job_store, "AIRFLOW_V_3_3_PLUS", False)
    import airflow.sdk

    monkeypatch.setattr(airflow.sdk, "Variable", variables)
    return variables


def old_line_context() -> dict[str, Any]:
    return {"ti": FakeTI()}  # no task_state_store, as below 3.3


# --------------------------------------------------------------------------- the record below 3.3


def test_below_3_3_a_retry_reconnects_through_a_variable_that_ends_with_the_task(
    sim: Simulator, below_3_3: FakeVariables
) -> None:
    """The first try dies after paying (deferred, then lost); the retry reconnects with no new POST."""
    op = ModelsLabVideoBatchOperator(task_id="generate", model_id="wan2.2", prompts=prompts(3), **FAST)
    op.deferrable = True
    with pytest.raises(TaskDeferred):
        op.execute(old_line_context())
    [key] = below_3_3.data
    assert key.startswith("modelslab_job.dag.generate.run.-1.")
    record = json.loads(below_3_3.data[key])
    assert "key" not in json.dumps(record).lower().replace("track", "")  # ids and fingerprints only
    op.deferrable = False
    retry = old_line_context()
    urls = op.execute(retry)
    assert len(urls) == 3
    assert len(accepted(sim, BATCH)) == 1  # paid once
    assert retry["ti"].xcom["batch_ids"] == [record["jobs"][0]["id"]]
    assert below_3_3.data == {}  # removed when the task ended


def test_below_3_3_a_failed_task_keeps_its_variable_for_a_clear(
    sim: Simulator, below_3_3: FakeVariables
) -> None:
    """A clear after a partly failed batch task reuses the batches that succeeded (one POST each)."""
    inputs = [*prompts(4), "shot 4 [sim:duration=0.2 outcome=failed]", *prompts(16)]
    op = ModelsLabVideoBatchOperator(task_id="generate", model_id="wan2.2", prompts=inputs, **FAST)
    with pytest.raises(AirflowFailException, match="input 4"):
        op.execute(old_line_context())
    assert below_3_3.data  # kept: the clear below needs it
    assert len(accepted(sim, BATCH)) == 2  # 21 inputs: batches of 11 and 10
    with pytest.raises(AirflowFailException, match="input 4"):
        op.execute(old_line_context())  # the clear: the failed batch again, the good one reused
    assert len(accepted(sim, BATCH)) == 3


def test_below_3_3_an_unwritable_variable_never_fails_a_paid_try(
    sim: Simulator, below_3_3: FakeVariables, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise PermissionError("no Variable writes here")

    monkeypatch.setattr(below_3_3, "set", refuse)
    urls = ModelsLabTextToVideoOperator(task_id="generate", prompt="a cat", **FAST).execute(
        old_line_context()
    )
    assert urls


def test_the_variable_key_is_readable_and_unique() -> None:
    a = job_store.variable_key("daily", "generate", "manual__2026-12-06T10:00:00+00:00", 2)
    b = job_store.variable_key("daily", "generate", "manual__2026-12-06T10_00_00_00_00", 2)
    assert a.startswith("modelslab_job.daily.generate.manual__2026-12-06T10_00_00_00_00.2.")
    assert a != b
    assert len(job_store.variable_key("d" * 250, "t" * 250, "r" * 250, 0)) <= 250


def test_durable_false_keeps_no_record(sim: Simulator, below_3_3: FakeVariables) -> None:
    ModelsLabTextToVideoOperator(task_id="generate", prompt="a cat", durable=False, **FAST).execute(
        old_line_context()
    )
    assert below_3_3.data == {}


# --------------------------------------------------------------------------- pure rules


def test_try_deadline_is_the_earlier_limit_from_the_try_start() -> None:
    assert try_deadline(1000.0, 1005.0, 60, None) == (1060.0, "timeout of 60 s")
    assert try_deadline(1000.0, 1005.0, 60, timedelta(seconds=20)) == (1020.0, "execution_timeout of 20 s")
    assert try_deadline(1000.0, 1005.0, 60, timedelta(seconds=90)) == (1060.0, "timeout of 60 s")
    # a start in the future (clock skew) counts from now
    assert try_deadline(2000.0, 1005.0, 60, None) == (1065.0, "timeout of 60 s")


def entry(status: Status, urls: tuple[str, ...] = ()) -> EntryResult:
    return EntryResult(0, status, status.value, urls=urls)


def test_a_stored_submission_is_reused_only_when_running_or_done() -> None:
    ok, bad, running = entry(Status.DONE, ("https://x/v.mp4",)), entry(Status.FAILED), entry(Status.RUNNING)
    assert verdict([ok, ok], 2, accept_failures=False) == "done"
    assert verdict([ok, running], 2, accept_failures=False) == "running"
    assert verdict([ok], 2, accept_failures=False) == "running"  # not every entry reported yet
    assert verdict([bad, bad], 2, accept_failures=True) == "failed"
    # some videos made, some failed: reused when failures are acceptable, else generated again
    assert verdict([ok, bad], 2, accept_failures=True) == "done"
    assert verdict([ok, bad], 2, accept_failures=False) == "failed"


def test_records_are_read_in_every_format_and_junk_is_no_record() -> None:
    legacy = {"request_id": "7", "api_version": "v6", "fingerprint": "f", "track_id": "t", "eta": 3}
    [(number, job)] = records_from_store(legacy).items()
    assert (number, job["id"], job["kind"], job["size"], job["offset"], job["track_ids"]) == (
        0,
        "7",
        "single",
        1,
        0,
        ["t"],
    )
    new = {"jobs": [{"id": "9", "kind": "batch", "size": 3, "offset": 0, "number": 0, "fingerprint": "f"}]}
    assert records_from_store(new)[0]["id"] == "9"
    for junk in (
        None,
        "x",
        {"jobs": "x"},
        {"jobs": [{"id": "9", "kind": "batch"}]},
        {"jobs": [{"kind": "nope"}]},
    ):
        assert records_from_store(junk) == {}


def test_sizes_read_as_batches_and_videos() -> None:
    assert describe(["single"], [1]) == "1 video"
    assert describe(["batch"], [3]) == "1 batch of 3 videos"
    assert describe(["batch", "batch"], [13, 12]) == "2 batches of 25 videos"
    assert describe(["single", "single"], [1, 1]) == "2 videos (2 single requests)"


def test_a_wait_polls_once_more_just_before_its_deadline() -> None:
    tracker = WaitTracker(
        request_id="1", started_at=0.0, deadline=10.0, poll=PollPolicy(min_interval=5, interval=15)
    )
    from modelslab_provider.client.core import VideoResult

    running = VideoResult(status=Status.RUNNING, raw_status="processing", request_id="1")
    decision = tracker.on_result(running, 3.0)
    assert decision.delay == pytest.approx(10.0 - LAST_POLL_LEAD - 3.0)
    assert tracker.on_result(running, 10.0 - LAST_POLL_LEAD).action.value == "fail"


def test_ui_run_ids_keep_readable_track_ids() -> None:
    tid = make_track_id("daily", "manual__2026-12-06T10:00:00+00:00", "generate", -1, 1)
    assert tid == "daily.generate.manual__2026-12-06T10_00_00_00_00.m-1.t1"
    long = make_track_id("d" * 40, "manual__2026-12-06T10:00:00+00:00", "t" * 40, -1, 1)
    assert long.startswith("d" * 40)
    assert len(long) <= 64


# --------------------------------------------------------------------------- batch parity


def test_batch_parity_link_kill_warning_and_ids_when_not_waiting(
    sim: Simulator, capsys: pytest.CaptureFixture
) -> None:
    ctx = {"ti": FakeTI(), "task_state_store": None}
    op = ModelsLabVideoBatchOperator(task_id="generate", model_id="wan2.2", prompts=prompts(3), **FAST)
    urls = op.execute(ctx)
    assert ctx["ti"].xcom["video_url"] == urls[0][0]  # the "ModelsLab Video" link's target
    assert [link.name for link in op.operator_extra_links] == ["ModelsLab Video"]
    op.on_kill()
    [batch_id] = ctx["ti"].xcom["batch_ids"]
    warning = next(line for line in capsys.readouterr().out.splitlines() if "no cancel API" in line)
    assert f"batch {batch_id}" in warning
    assert "billed" in warning
    assert "dag.generate-" in warning  # the derived track ids name the DAG and task
    ids = ModelsLabVideoBatchOperator(
        task_id="generate", model_id="wan2.2", prompts=prompts(3), wait_for_completion=False, **FAST
    ).execute({"ti": FakeTI()})
    assert ids == [str(accepted(sim, BATCH)[-1]["job_id"])]


def test_batch_logs_count_batches_and_videos(sim: Simulator, capsys: pytest.CaptureFixture) -> None:
    op = ModelsLabVideoBatchOperator(task_id="generate", model_id="wan2.2", prompts=prompts(3), **FAST)
    assert run_deferrable(op, {"ti": FakeTI()}) is not None
    text = capsys.readouterr().out
    assert "1 batch of 3 videos" in text
    assert "job(s)" not in text
