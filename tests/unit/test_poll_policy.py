"""The pure poll decisions shared by the sync wait, the sensor and the trigger."""

from __future__ import annotations

from typing import Any

import pytest

from modelslab_provider.client.core import VideoResult
from modelslab_provider.client.errors import (
    ModelsLabAuthError,
    ModelsLabJobFailedError,
    ModelsLabNotFoundError,
    ModelsLabRateLimitError,
    ModelsLabTimeoutError,
    ModelsLabTransientError,
)
from modelslab_provider.client.policy import Action, PollPolicy, WaitTracker
from modelslab_provider.client.responses import normalise_response

URL = "https://pub.example.r2.dev/video_generations/a.mp4"


def result(**body: Any) -> VideoResult:
    return normalise_response(body)


RUNNING = {"status": "processing", "message": "try again later.", "output": ""}
DONE = {"status": "success", "id": 7, "output": [URL]}


# --------------------------------------------------------------------------- PollPolicy


def test_without_eta_polls_keep_a_steady_pace_then_widen_within_bounds() -> None:
    policy = PollPolicy(min_interval=5, max_interval=60, interval=15, patience=600, growth=0.15)
    delays = [policy.next_delay(elapsed=t, eta=None) for t in (0, 10, 300, 600, 700, 1000, 100_000)]
    assert delays[:4] == [15, 15, 15, 15]  # steady until ``patience``
    assert delays == sorted(delays)
    assert delays[4] > 15
    assert delays[-1] == 60  # a very long job costs few calls
    assert PollPolicy(min_interval=5, interval=1).next_delay(elapsed=0, eta=None) == 5


def test_with_eta_the_first_poll_comes_a_little_before_the_expected_time() -> None:
    policy = PollPolicy(min_interval=5, max_interval=120, eta_lead=0.85)
    assert policy.next_delay(elapsed=0, eta=100) == pytest.approx(85)
    assert policy.next_delay(elapsed=50, eta=100) == pytest.approx(35)
    assert policy.next_delay(elapsed=80, eta=100) == 5  # never closer than min_interval


def test_with_eta_polls_widen_slowly_after_the_expected_time() -> None:
    policy = PollPolicy(min_interval=5, max_interval=60, eta_lead=0.85, growth=0.15)
    just_after = policy.next_delay(elapsed=90, eta=100)
    long_after = policy.next_delay(elapsed=400, eta=100)
    assert 5 <= just_after < long_after <= 60


def test_max_interval_bounds_every_gap_including_the_first_for_a_far_eta() -> None:
    """Users read ``max_poll_interval`` as the longest pause between polls, the first included."""
    policy = PollPolicy(min_interval=5, max_interval=60)
    assert policy.next_delay(elapsed=0, eta=100_000) == 60
    assert policy.next_delay(elapsed=0, eta=600) == 60  # not 480 s of silence
    t = WaitTracker(request_id="7", started_at=0.0, eta=1200.0, poll=policy)
    now = t.first_delay(0.0)
    gaps = [now]
    while now < 1500:
        decision = t.on_result(result(**RUNNING), now, jitter=0.5)
        gaps.append(decision.delay)
        now += decision.delay
    assert max(gaps) <= 60
    assert gaps[0] == 60
    # the ETA still shapes the approach: polls tighten before the expected finish
    assert min(gaps) < 60


def test_transient_failures_back_off_within_max_interval_but_honour_a_rate_limit_wait() -> None:
    policy = PollPolicy(min_interval=1, max_interval=10)
    t = WaitTracker(request_id="7", started_at=0.0, poll=policy)
    delays = [t.on_error(ModelsLabTransientError("502"), now=i, jitter=0.99).delay for i in range(8)]
    assert delays == sorted(delays)
    assert delays[-1] == 10  # the backoff (up to 30 s) is cut to max_interval
    limited = t.on_error(ModelsLabRateLimitError("slow down", retry_after=40), now=9, jitter=0.0)
    assert limited.delay == pytest.approx(40)  # ModelsLab refuses polls before its wait is over
    assert t.on_error(ModelsLabRateLimitError("slow", retry_after=999), now=10).delay == 50


def test_the_retired_max_eta_wait_setting_still_loads_and_is_ignored() -> None:
    """Trigger kwargs saved by an earlier version carry ``max_eta_wait``; a resumed wait must load them."""
    with pytest.warns(DeprecationWarning, match="max_eta_wait"):
        policy = PollPolicy(**{**PollPolicy().to_dict(), "max_eta_wait": 900.0})
    assert policy == PollPolicy()
    assert "max_eta_wait" not in policy.to_dict()
    assert policy.next_delay(elapsed=0, eta=100_000) == policy.max_interval


def test_zero_or_missing_eta_falls_back_to_backoff() -> None:
    policy = PollPolicy(min_interval=2, max_interval=10, interval=3)
    assert policy.next_delay(elapsed=0, eta=0) == policy.next_delay(elapsed=0, eta=None) == 3


def test_remaining_time_caps_the_delay() -> None:
    policy = PollPolicy()
    assert policy.next_delay(elapsed=0, eta=600, remaining=3) == 3
    assert policy.next_delay(elapsed=0, eta=None, remaining=-5) == 0


@pytest.mark.parametrize(("low", "high"), [(0, 5), (10, 5), (-1, 5)])
def test_invalid_bounds_are_refused(low: float, high: float) -> None:
    with pytest.raises(ValueError, match="min_interval"):
        PollPolicy(min_interval=low, max_interval=high)


def test_to_dict_round_trips_and_is_json_only() -> None:
    policy = PollPolicy(min_interval=1.5, max_interval=9, max_empty_success_polls=2)
    data = policy.to_dict()
    assert PollPolicy(**data) == policy
    assert all(isinstance(v, int | float) for v in data.values())


# --------------------------------------------------------------------------- WaitTracker


def tracker(**kwargs: Any) -> WaitTracker:
    kwargs.setdefault("poll", PollPolicy(min_interval=1, max_interval=10, interval=2))
    return WaitTracker(request_id="7", started_at=1000.0, **kwargs)


def test_success_with_urls_is_done() -> None:
    t = tracker()
    decision = t.on_result(result(**DONE), now=1010)
    assert decision.action is Action.DONE
    assert decision.result is not None
    assert decision.result.urls == (URL,)
    assert t.polls == 1


@pytest.mark.parametrize("status", ["failed", "error", "cancelled", "expired"])
def test_terminal_failure_carries_the_api_message(status: str) -> None:
    decision = tracker().on_result(result(status=status, messege="GPU on fire"), now=1010)
    assert decision.action is Action.FAIL
    assert isinstance(decision.error, ModelsLabJobFailedError)
    assert "GPU on fire" in str(decision.error)
    assert decision.error.status == status


def test_running_waits_and_uses_a_fresh_eta_counted_from_now() -> None:
    t = tracker()
    decision = t.on_result(result(**RUNNING, eta=20), now=1030)
    assert decision.action is Action.WAIT
    assert t.eta == pytest.approx(50)  # 30 s elapsed + 20 s to go, from submission
    assert decision.delay == pytest.approx(t.poll.next_delay(elapsed=30, eta=50))
    assert decision.delay == pytest.approx(50 * t.poll.eta_lead - 30)


def test_success_without_urls_waits_a_bounded_number_of_polls() -> None:
    t = tracker(poll=PollPolicy(min_interval=1, max_interval=10, max_empty_success_polls=3))
    empty = result(status="success", output=[])
    actions = [t.on_result(empty, now=1000 + i).action for i in range(4)]
    assert actions == [Action.WAIT, Action.WAIT, Action.WAIT, Action.FAIL]
    decision = t.on_result(empty, now=1010)
    assert "no output URL" in str(decision.error)


def test_success_without_urls_then_urls_is_done() -> None:
    t = tracker()
    assert t.on_result(result(status="success", output=""), now=1001).action is Action.WAIT
    assert t.on_result(result(**DONE), now=1002).action is Action.DONE


def test_transient_errors_never_end_the_wait_and_back_off() -> None:
    t = tracker(poll=PollPolicy(min_interval=5, max_interval=10))
    delays = []
    for i in range(20):
        decision = t.on_error(ModelsLabTransientError("502"), now=1000 + i, jitter=0.0)
        assert decision.action is Action.WAIT
        delays.append(decision.delay)
    assert delays == sorted(delays)
    assert delays[-1] <= 50  # capped (max_interval * 5)
    # a good answer resets the backoff
    t.on_result(result(**RUNNING), now=1100)
    assert t.transient_errors == 0


def test_rate_limit_wait_is_honoured() -> None:
    decision = tracker().on_error(ModelsLabRateLimitError("slow down", retry_after=7), now=1001, jitter=0.0)
    assert decision.action is Action.WAIT
    assert decision.delay == pytest.approx(7)


@pytest.mark.parametrize("error", [ModelsLabAuthError("Invalid API key"), ModelsLabNotFoundError("gone")])
def test_errors_about_the_call_fail_at_once(error: Exception) -> None:
    decision = tracker().on_error(error, now=1001)
    assert decision.action is Action.FAIL
    assert decision.error is error


def test_unexpected_exceptions_are_not_swallowed() -> None:
    with pytest.raises(KeyError):
        tracker().on_error(KeyError("bug"), now=1001)


def test_the_deadline_caps_waits_and_then_fails_with_a_timeout() -> None:
    t = tracker(deadline=1020.0)
    assert t.first_delay(1000) <= 20
    near = t.on_result(result(**RUNNING), now=1018)
    assert near.action is Action.WAIT
    assert near.delay <= 2
    assert not t.timed_out(1019)
    late = t.on_result(result(**RUNNING), now=1021)
    assert late.action is Action.FAIL
    assert isinstance(late.error, ModelsLabTimeoutError)
    assert t.timed_out(1021)
    assert "7" in str(late.error)


def test_a_terminal_answer_beats_the_deadline() -> None:
    t = tracker(deadline=1020.0)
    assert t.on_result(result(**DONE), now=1050).action is Action.DONE


def test_first_delay_follows_the_submit_eta() -> None:
    t = tracker(eta=40.0, poll=PollPolicy(min_interval=1, max_interval=60, interval=2))
    assert t.first_delay(1000) == pytest.approx(40 * t.poll.eta_lead)
    no_eta = tracker()
    assert no_eta.first_delay(1000) == no_eta.poll.next_delay(elapsed=0, eta=None)
