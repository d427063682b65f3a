"""VideoFetchSensor's poke, deferral and resume, against the simulator on 127.0.0.1."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    PokeReturnValue,
    TaskDeferred,
)

from modelslab_provider.client.core import ClientSettings
from modelslab_provider.client.sync import ModelsLabClient
from modelslab_provider.sensors.video import STATE_KEY, VideoFetchSensor
from modelslab_provider.simulator import Simulator
from modelslab_provider.triggers.video import VideoFetchTrigger
from tests.unit.fresh_import import loaded_after_import

KEY = "sk-unit-sensor-93b1d04e7a"


class StateStore:
    """A stand-in for Airflow 3.3's ``task_state_store`` (get/set of JSON values)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return json.loads(self.data[key]) if key in self.data else default

    def set(self, key: str, value: Any, *, retention: timedelta | None = None) -> None:
        self.data[key] = json.dumps(value)


@pytest.fixture(scope="module")
def simulator() -> Iterator[Simulator]:
    with Simulator(port=0, duration=0.2) as sim:
        yield sim


@pytest.fixture
def sim(simulator: Simulator, monkeypatch: pytest.MonkeyPatch) -> Simulator:
    connect(monkeypatch, simulator, KEY)
    return simulator


def connect(
    monkeypatch: pytest.MonkeyPatch, sim: Simulator, key: str, conn_id: str = "modelslab_default"
) -> None:
    conn = {"conn_type": "modelslab", "password": key, "host": sim.url, "extra": {"max_retries": 1}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def submit(sim: Simulator, scenario: str) -> str:
    client = ModelsLabClient(ClientSettings(api_key=KEY, base_url=sim.url))
    result = client.submit("text2video", {"prompt": f"a dog [sim:{scenario}]"})
    assert result.request_id is not None
    return result.request_id


def sensor(request_id: Any, **kwargs: Any) -> VideoFetchSensor:
    kwargs.setdefault("poll_policy", {"min_interval": 0.05, "max_interval": 0.2, "interval": 0.05})
    return VideoFetchSensor(task_id="wait", request_id=request_id, **kwargs)


def poke_until_done(op: VideoFetchSensor, context: dict[str, Any], limit: int = 100) -> Any:
    for _ in range(limit):
        outcome = op.poke(context)
        if outcome:
            return outcome
        time.sleep(0.05)
    raise AssertionError("never done")


# --------------------------------------------------------------------------- poke


def test_poke_returns_the_urls_as_xcom_and_accepts_an_int_id(sim: Simulator) -> None:
    job = submit(sim, "duration=0.2")
    op = sensor(int(job))
    op.log.debug("logger ready")
    attributes = dict(vars(op))
    assert op.poke({}) is False  # still processing
    outcome = poke_until_done(op, {})
    assert isinstance(outcome, PokeReturnValue)
    assert outcome.is_done
    assert isinstance(outcome.xcom_value, list)
    assert outcome.xcom_value[0].startswith(sim.url)
    # nothing kept on self between pokes but the cached hook (one client, one keep-alive session)
    assert {k: v for k, v in vars(op).items() if k != "hook"} == attributes


@pytest.mark.parametrize("outcome", ["failed", "error", "cancelled", "expired"])
def test_terminal_failure_fails_without_retry_with_the_api_message(sim: Simulator, outcome: str) -> None:
    job = submit(sim, f"duration=0 outcome={outcome} messege=1")
    with pytest.raises(AirflowFailException, match="simulated"):
        sensor(job).poke({})


def test_unknown_request_fails_at_once(sim: Simulator) -> None:
    with pytest.raises(AirflowFailException, match="Request not found"):
        sensor("987654321").poke({})


def test_refused_key_fails_at_once_and_names_the_connection(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = submit(sim, "duration=0")
    connect(monkeypatch, sim, "invalid-key-42", conn_id="modelslab_other")
    with pytest.raises(AirflowFailException, match="modelslab_other") as info:
        sensor(job, modelslab_conn_id="modelslab_other").poke({})
    assert "invalid-key-42" not in str(info.value)


@pytest.mark.parametrize("bad", ["", "not an id", "{{ missing }}", None])
def test_a_bad_request_id_fails_with_a_hint(sim: Simulator, bad: Any) -> None:
    with pytest.raises(AirflowFailException, match="request_id"):
        sensor(bad).poke({})


@pytest.mark.parametrize("fault", ["502", "empty", "drop"])
def test_transient_errors_only_delay_the_sensor(sim: Simulator, fault: str) -> None:
    job = submit(sim, f"duration=0 fault={fault} fault_on=1,2")
    op = sensor(job)
    assert op.poke({}) is False
    assert op.poke({}) is False
    outcome = op.poke({})
    assert isinstance(outcome, PokeReturnValue)
    assert outcome.xcom_value


def test_success_without_urls_is_bounded_with_a_state_store(sim: Simulator) -> None:
    job = submit(sim, "duration=0 empty_polls=-1")
    op = sensor(job, poll_policy={"max_empty_success_polls": 2})
    context = {"task_state_store": StateStore()}
    assert op.poke(context) is False
    assert op.poke(context) is False
    with pytest.raises(AirflowFailException, match="no output URL"):
        op.poke(context)
    saved = context["task_state_store"].get(f"{STATE_KEY}:{job}:0")
    assert saved["empty_success_polls"] == 3
    assert saved["polls"] == 3


def test_success_without_urls_then_urls_with_a_state_store(sim: Simulator) -> None:
    job = submit(sim, "duration=0 empty_polls=2")
    op = sensor(job, poll_policy={"max_empty_success_polls": 2})
    context = {"task_state_store": StateStore()}
    assert op.poke(context) is False
    assert op.poke(context) is False
    assert op.poke(context)


def test_success_without_urls_keeps_poking_without_a_state_store(sim: Simulator) -> None:
    """Without persisted counters the sensor cannot count pokes: only its timeout ends the wait."""
    job = submit(sim, "duration=0 empty_polls=-1")
    op = sensor(job, poll_policy={"max_empty_success_polls": 1})
    assert [op.poke({}) for _ in range(4)] == [False] * 4


def test_counters_survive_between_pokes_only_in_the_store(sim: Simulator) -> None:
    job = submit(sim, "outcome=never")
    store = StateStore()
    for _ in range(3):
        assert sensor(job).poke({"task_state_store": store}) is False  # a fresh instance per poke
    assert store.get(f"{STATE_KEY}:{job}:0")["polls"] == 3


# --------------------------------------------------------------------------- deferrable


def test_deferrable_pokes_once_then_defers_with_the_remaining_timeout(sim: Simulator) -> None:
    job = submit(sim, "outcome=never")
    op = sensor(job, deferrable=True, timeout=600)
    before = time.time()
    with pytest.raises(TaskDeferred) as info:
        op.execute({})
    deferred = info.value
    assert deferred.method_name == "execute_complete"
    assert isinstance(deferred.timeout, timedelta)
    # the scheduler's deferral timeout comes deferral_grace after the trigger's own deadline
    assert 590 + op.deferral_grace < deferred.timeout.total_seconds() <= 600 + op.deferral_grace
    trigger = deferred.trigger
    assert isinstance(trigger, VideoFetchTrigger)
    kwargs = trigger.serialize()[1]
    assert kwargs["request_id"] == job
    assert kwargs["modelslab_conn_id"] == "modelslab_default"
    assert before + 590 < kwargs["deadline"] <= time.time() + 600
    assert KEY not in json.dumps(kwargs)
    assert sim.jobs()[job]["polls"] == 1


def test_deferrable_returns_at_once_when_already_done(sim: Simulator) -> None:
    job = submit(sim, "duration=0")
    urls = sensor(job, deferrable=True).execute({})
    assert isinstance(urls, list)
    assert urls


def test_deferrable_first_poke_failure_respects_soft_fail(sim: Simulator) -> None:
    job = submit(sim, "duration=0 outcome=failed")
    with pytest.raises(AirflowFailException):
        sensor(job, deferrable=True).execute({})
    with pytest.raises(AirflowSkipException):
        sensor(job, deferrable=True, soft_fail=True).execute({})


def test_execute_complete_returns_urls_or_raises() -> None:
    op = sensor("7", deferrable=True)
    ok = {"status": "success", "request_id": "7", "urls": ["https://x/a.mp4"], "polls": 2, "elapsed": 3.0}
    assert op.execute_complete({}, ok) == ["https://x/a.mp4"]
    with pytest.raises(AirflowSensorTimeout, match="late"):
        op.execute_complete({}, {"status": "timeout", "request_id": "7", "message": "late"})
    with pytest.raises(AirflowFailException, match="fire"):
        op.execute_complete({}, {"status": "failed", "request_id": "7", "message": "fire", "api_status": "x"})
    with pytest.raises(AirflowException, match="unknown status"):
        op.execute_complete({}, {"request_id": "7"})
    with pytest.raises(AirflowException):
        op.execute_complete({}, None)


def test_resume_applies_soft_fail_to_a_timeout_event() -> None:
    """BaseSensorOperator.resume_execution turns the sensor timeout into a skip with soft_fail."""
    op = sensor("7", deferrable=True, soft_fail=True)
    event = {"status": "timeout", "request_id": "7", "message": "late"}
    with pytest.raises(AirflowSkipException):
        op.resume_execution("execute_complete", {"event": event}, {})


# --------------------------------------------------------------------------- definition


def test_template_fields_and_defaults() -> None:
    op = sensor("{{ ti.xcom_pull('generate', key='request_id') }}")
    assert "request_id" in op.template_fields
    assert "fetch_url" in op.template_fields
    assert op.modelslab_conn_id == "modelslab_default"
    assert op.api_version == "v6"
    assert op.deferrable is False  # [operators] default_deferrable is false by default
    assert json.loads(json.dumps(op.poll_policy)) == op.poll_policy


def test_importing_the_sensor_does_not_import_http_libraries() -> None:
    assert loaded_after_import("modelslab_provider.sensors.video", ("requests", "aiohttp")) == []


# --------------------------------------------------------------------------- issues 11 and 12


class LogRecorder:
    """Stands in for the operator's logger: Airflow's structlog output does not reach caplog."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def _record(self, msg: str, *args: Any, **_: Any) -> None:
        self.lines.append(msg % args if args else msg)

    info = warning = error = debug = exception = _record

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def recording(monkeypatch: pytest.MonkeyPatch) -> LogRecorder:
    recorder = LogRecorder()
    monkeypatch.setattr(VideoFetchSensor, "log", property(lambda self: recorder))
    return recorder


class FakeTI:
    def __init__(self, try_number: int = 1, start_date: Any = None) -> None:
        self.try_number = try_number
        self.start_date = start_date


def test_counters_are_scoped_to_the_try(sim: Simulator) -> None:
    """Issue 11.12: Airflow's store rows are shared by every try; a retry starts its own count."""
    job = submit(sim, "outcome=never")
    store = StateStore()
    for _ in range(3):
        assert sensor(job).poke({"task_state_store": store, "ti": FakeTI(1)}) is False
    assert sensor(job).poke({"task_state_store": store, "ti": FakeTI(2)}) is False
    assert store.get(f"{STATE_KEY}:{job}:1")["polls"] == 3
    assert store.get(f"{STATE_KEY}:{job}:2")["polls"] == 1


def test_empty_success_count_of_an_earlier_try_is_not_inherited(sim: Simulator) -> None:
    job = submit(sim, "duration=0 empty_polls=-1")
    store = StateStore()
    op = sensor(job, poll_policy={"max_empty_success_polls": 2})
    assert op.poke({"task_state_store": store, "ti": FakeTI(1)}) is False
    assert op.poke({"task_state_store": store, "ti": FakeTI(1)}) is False
    # a retry gets the full allowance again instead of failing on its first poke
    assert op.poke({"task_state_store": store, "ti": FakeTI(2)}) is False


def test_undocumented_fetch_url_is_ignored_with_a_warning(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11.11: only v6/v7 ``fetch/{id}`` of this request on the connection's origin is polled."""
    log = recording(monkeypatch)
    job = submit(sim, "duration=0")
    op = sensor(job, fetch_url=f"{sim.url}/api/wallet_balance")
    outcome = op.poke({})
    assert isinstance(outcome, PokeReturnValue)
    assert "Ignoring fetch_url" in log.text
    paths = [r["path"] for r in sim.requests()]
    assert "/api/wallet_balance" not in paths
    assert f"/api/v6/video/fetch/{job}" in paths


def test_documented_fetch_url_is_polled_as_is(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    log = recording(monkeypatch)
    job = submit(sim, "duration=0")
    op = sensor(job, fetch_url=f"{sim.url}/api/v7/video-fusion/fetch/{job}")
    assert op.poke({})
    assert "Ignoring fetch_url" not in log.text
    assert f"/api/v7/video-fusion/fetch/{job}" in [r["path"] for r in sim.requests()]


def test_a_poke_never_overshoots_the_sensor_timeout(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 11.8: a slow API cannot stretch one poke (with its retries) past the sensor's limit."""
    conn = {
        "conn_type": "modelslab",
        "password": KEY,
        "host": sim.url,
        "extra": {"max_retries": 4, "timeout": 30},
    }
    monkeypatch.setenv("AIRFLOW_CONN_MODELSLAB_SLOW", json.dumps(conn))
    job = submit(sim, "duration=0 fault=slow slow_s=20 fault_on=1,2,3,4")
    op = sensor(job, modelslab_conn_id="modelslab_slow", timeout=2)
    started = time.monotonic()
    assert op.poke({}) is False
    assert time.monotonic() - started < 4  # was 4 x 20 s


def test_deferrable_sensor_honours_execution_timeout_and_poke_interval(sim: Simulator) -> None:
    """Issues 11.7 and 12.5: the trigger's deadline is the earlier limit; poke_interval floors polls."""
    from datetime import UTC, datetime

    job = submit(sim, "outcome=never")
    op = sensor(job, deferrable=True, timeout=3600, execution_timeout=timedelta(seconds=20), poke_interval=30)
    started = datetime.now(UTC)
    with pytest.raises(TaskDeferred) as info:
        op.execute({"ti": FakeTI(1, started)})
    kwargs = info.value.trigger.serialize()[1]
    assert kwargs["deadline"] == pytest.approx(started.timestamp() + 20, abs=1)
    assert kwargs["limit"] == "execution_timeout of 20 s"
    assert info.value.timeout.total_seconds() <= 20 + op.deferral_grace
    assert kwargs["poll_policy"]["min_interval"] == 30
    assert kwargs["poll_policy"]["interval"] >= 30
    assert kwargs["poll_policy"]["max_interval"] >= 30


def test_deferrable_sensor_keeps_a_finer_poll_policy_when_poke_interval_is_small(sim: Simulator) -> None:
    job = submit(sim, "outcome=never")
    op = sensor(job, deferrable=True, poke_interval=0.01, poll_policy={"min_interval": 2, "max_interval": 9})
    with pytest.raises(TaskDeferred) as info:
        op.execute({})
    policy = info.value.trigger.serialize()[1]["poll_policy"]
    assert (policy["min_interval"], policy["max_interval"]) == (2, 9)


def test_the_sensor_caches_its_hook_and_uses_the_default_conn_id() -> None:
    """Issue 12.4: one hook per sensor, like the operators; one default conn id."""
    from modelslab_provider.client.core import DEFAULT_CONN_ID
    from modelslab_provider.hooks.modelslab import ModelsLabHook

    op = sensor("7")
    assert op.hook is op.hook
    assert op.hook.modelslab_conn_id == DEFAULT_CONN_ID == ModelsLabHook.default_conn_name


def test_sensor_logs_progress_in_the_tracker_wording(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12.3: one wording (WaitTracker.describe) for the sensor, the trigger and the operator."""
    log = recording(monkeypatch)
    job = submit(sim, "outcome=never eta=100")
    assert sensor(job).poke({}) is False
    assert f"ModelsLab request {job}: status processing, ETA" in log.text
    assert "poll 1," in log.text


def test_a_given_poll_policy_is_not_floored_by_the_default_poke_interval(sim: Simulator) -> None:
    """Airflow's default poke_interval (60 s) must not slow down an explicit poll_policy."""
    job = submit(sim, "outcome=never")
    op = sensor(job, deferrable=True, timeout=120, poll_policy={"min_interval": 0.5, "max_interval": 2})
    assert op._trigger_policy()["min_interval"] == 0.5
    assert op._trigger_policy()["max_interval"] == 2
    floored = sensor(job, deferrable=True, timeout=120, poke_interval=30, poll_policy={"min_interval": 0.5})
    assert floored._trigger_policy()["min_interval"] == 30


def test_an_unknown_poll_policy_setting_is_named_at_parse_time() -> None:
    """The same reading of ``poll_policy`` as the trigger's kwargs (events.load_poll_policy)."""
    with pytest.raises(ValueError, match=r"poll_policy has an unknown setting: .*'bogus'"):
        VideoFetchSensor(task_id="unknown_setting", request_id="1", poll_policy={"bogus": 1})
