"""Issue 16: a waiting trigger logs its progress line at INFO only when it says something new.

In a real triggerer every INFO line wakes the supervisor's loop (which queries the trigger table),
so a line per poll was most of a poll's CPU. The rule (``PROGRESS_INFO_EVERY`` and ``ProgressLog``
in ``modelslab_provider/triggers/base.py``, README "Waiting modes"): INFO on the first poll, when the
status changes, when the expected ready time moves by the interval or more, on every empty success,
and otherwise at most once per interval; DEBUG in between. The batch trigger follows the same rule,
with every round that saw a transient error at INFO.
"""

from __future__ import annotations

from typing import Any

import pytest

from modelslab_provider.client.core import Status, VideoResult
from modelslab_provider.client.policy import WaitTracker
from modelslab_provider.triggers import base
from modelslab_provider.triggers.base import PROGRESS_INFO_EVERY, ProgressLog
from modelslab_provider.triggers.video import VideoFetchTrigger
from tests.unit import test_trigger
from tests.unit.test_trigger import Sim, run, trigger

sim = test_trigger.sim  # the simulator fixture of the trigger tests


def processing(raw: str = "processing", **kwargs: Any) -> VideoResult:
    return VideoResult(status=Status.RUNNING, raw_status=raw, **kwargs)


def is_info(log: ProgressLog, tracker: WaitTracker, result: VideoResult, now: float) -> bool:
    """Whether the video trigger logs this poll's progress line at INFO."""
    return VideoFetchTrigger._progress_is_info(log, tracker, result, now)


def test_first_poll_status_change_eta_jump_and_interval_are_info_the_rest_debug() -> None:
    tracker = WaitTracker(request_id="1", started_at=0.0, eta=100.0)
    log = ProgressLog()
    assert is_info(log, tracker, processing(), 10.0)  # first poll
    assert not is_info(log, tracker, processing(), 15.0)
    assert not is_info(log, tracker, processing(), 10.0 + PROGRESS_INFO_EVERY - 1)
    assert is_info(log, tracker, processing(), 10.0 + PROGRESS_INFO_EVERY)  # the interval passed
    assert is_info(log, tracker, processing("queued"), 75.0)  # status changed
    assert not is_info(log, tracker, processing("queued"), 80.0)
    tracker.eta = 100.0 + PROGRESS_INFO_EVERY - 1
    assert not is_info(log, tracker, processing("queued"), 85.0)  # ETA moved, not by much
    tracker.eta = 100.0 + PROGRESS_INFO_EVERY
    assert is_info(log, tracker, processing("queued"), 90.0)  # ETA moved by the interval
    assert not is_info(log, tracker, processing("queued"), 95.0)
    assert is_info(log, tracker, processing("queued", unknown_status=True), 96.0)
    empty = VideoResult(status=Status.RUNNING, raw_status="success", awaiting_links=True)
    assert is_info(log, tracker, empty, 97.0)
    assert is_info(log, tracker, empty, 98.0)  # every empty success: they count towards a failure


def test_an_eta_first_known_after_submission_is_info() -> None:
    tracker = WaitTracker(request_id="1", started_at=0.0)
    log = ProgressLog()
    assert is_info(log, tracker, processing(), 1.0)
    tracker.eta = 50.0
    assert is_info(log, tracker, processing(), 2.0)


class Levels:
    """Stands in for the trigger's logger (Airflow's structlog output does not reach caplog)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __getattr__(self, level: str) -> Any:
        def record(msg: str, *args: Any, **_: Any) -> None:
            self.lines.append((level, msg % args if args else msg))

        return record

    def progress(self, level: str) -> list[str]:
        return [text for lvl, text in self.lines if lvl == level and ": status " in text]


async def test_a_long_wait_logs_one_info_progress_line_then_debug(
    sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    levels = Levels()
    monkeypatch.setattr(VideoFetchTrigger, "log", property(lambda self: levels))
    job = await sim.submit("polls=6")
    event = await run(trigger(job["id"]))
    assert event["status"] == "success"
    assert sim.polls(job["id"]) == 6
    info, debug = levels.progress("info"), levels.progress("debug")
    # 5 "processing" polls within a second: the first at INFO, the other 4 at DEBUG
    assert len(info) == 1, levels.lines
    assert "poll 1," in info[0]
    assert len(debug) == 4, levels.lines
    assert "poll 5," in debug[-1]
    # the start and the end of the wait stay INFO
    assert any("Waiting for ModelsLab request" in t for lvl, t in levels.lines if lvl == "info")
    assert any("is ready after 6 polls" in t for lvl, t in levels.lines if lvl == "info")


async def test_with_a_short_interval_every_poll_is_info_again(
    sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    levels = Levels()
    monkeypatch.setattr(VideoFetchTrigger, "log", property(lambda self: levels))
    monkeypatch.setattr(base, "PROGRESS_INFO_EVERY", 0.0)
    job = await sim.submit("polls=4")
    assert (await run(trigger(job["id"])))["status"] == "success"
    assert len(levels.progress("info")) == 3
    assert not levels.progress("debug")
