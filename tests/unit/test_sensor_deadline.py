"""The deferrable sensor ends a timed-out wait as poke mode does, whoever notices the deadline first.

The trigger's own timeout event and the scheduler's deferral timeout (``__fail__`` with
``Trigger timeout``, given ``deferral_grace`` seconds later) both become ``AirflowSensorTimeout``,
or a skip with ``soft_fail``/``never_fail``. The real-run proof, with the triggerer stalled, is
tests/integration/test_sensor_stalled_trigger.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout, AirflowSkipException

from modelslab_provider.sensors.video import VideoFetchSensor

SCHEDULER_TIMEOUT = {"error": "Trigger timeout"}
TRIGGER_TIMEOUT_EVENT = {"event": {"status": "timeout", "request_id": "7", "message": "timeout of 30 s"}}


def sensor(**kwargs: object) -> VideoFetchSensor:
    return VideoFetchSensor(task_id="wait", request_id="7", deferrable=True, timeout=30, **kwargs)


@pytest.mark.parametrize(
    ("next_method", "next_kwargs"),
    [("__fail__", SCHEDULER_TIMEOUT), ("execute_complete", TRIGGER_TIMEOUT_EVENT)],
    ids=["scheduler-first", "trigger-first"],
)
def test_a_timeout_is_a_sensor_timeout_whoever_notices_it(next_method: str, next_kwargs: dict) -> None:
    with pytest.raises(AirflowSensorTimeout, match="timeout"):
        sensor().resume_execution(next_method, next_kwargs, {})


@pytest.mark.parametrize(
    ("next_method", "next_kwargs"),
    [("__fail__", SCHEDULER_TIMEOUT), ("execute_complete", TRIGGER_TIMEOUT_EVENT)],
    ids=["scheduler-first", "trigger-first"],
)
@pytest.mark.parametrize("flag", ["soft_fail", "never_fail"])
def test_a_timeout_is_skipped_with_soft_fail_whoever_notices_it(
    next_method: str, next_kwargs: dict, flag: str
) -> None:
    with pytest.raises(AirflowSkipException, match="Skipping"):
        sensor(**{flag: True}).resume_execution(next_method, next_kwargs, {})


def test_the_scheduler_message_names_the_limits() -> None:
    op = sensor(execution_timeout=timedelta(seconds=20))
    with pytest.raises(AirflowSensorTimeout, match=r"timeout=30 s, execution_timeout=20 s.*60 s after it"):
        op.resume_execution("__fail__", SCHEDULER_TIMEOUT, {})
