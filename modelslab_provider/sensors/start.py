"""``VideoFetchSensor(start_from_trigger=True)``: the scheduler hands the wait straight to the triggerer.

No worker runs the sensor: the scheduler creates the trigger from ``start_trigger_args`` (the
standard provider's ``DateTimeSensor`` does the same), and with ``end_from_trigger`` the trigger
ends the task too. Airflow 3.3 renders the sensor's templated fields in the triggerer.

Airflow 3.1 and 3.2 never start a task in the triggerer: their scheduler's code for it is
commented out (``models/dagrun.py``, "TODO TaskSDK: This is disabled", apache/airflow#66307). There
the sensor starts on a worker, which renders its templates, and defers at once: a deferrable
sensor. A real run on 3.2.2 (``tests/integration/test_trigger_end_live.py``) ended every task in the
same state, on the same try, as on 3.3, with the sensor queued for a worker.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from modelslab_provider.version_compat import AIRFLOW_V_3_3_PLUS

#: a :class:`~modelslab_provider.sensors.video.VideoFetchSensor`, not imported: that module imports this one
_Sensor = Any

CLASSPATH = "modelslab_provider.triggers.video.VideoFetchTrigger"
#: sensor fields that become trigger kwargs of the same name (and are rendered there on 3.3+)
FIELDS = ("request_id", "modelslab_conn_id", "api_version", "fetch_url")


def as_template(sensor: _Sensor, name: str, value: Any) -> Any:
    """``value``, with an upstream task's output (``op.output``) turned into the template pulling it."""
    from airflow.providers.common.compat.sdk import XComArg

    if not isinstance(value, XComArg):
        return value
    refs = list(value.iter_references())
    if type(value).__name__ != "PlainXComArg" or len(refs) != 1:
        raise ValueError(
            f"{sensor.task_id}: start_from_trigger=True takes {name} as a literal, a template, or an "
            f"upstream task's plain output; got {value!r} (a mapped or zipped XCom cannot be rendered "
            "in the triggerer). Use deferrable=True instead."
        )
    task, key = refs[0]
    sensor.set_upstream(task)  # the template below no longer carries the dependency
    # map_indexes=-1: one GetXCom request, which the triggerer serves (see _check_template)
    return f"{{{{ ti.xcom_pull(task_ids={task.task_id!r}, key={key!r}, map_indexes=-1) }}}}"


def _check_template(sensor: _Sensor, name: str, value: str) -> None:
    """Refuse templates the triggerer cannot render (they would hang the trigger until its timeout)."""
    if "xcom_pull" in value and "map_indexes" not in value:
        # Airflow 3.3.2's triggerer answers GetXCom but not the GetXComSequenceSlice request that
        # xcom_pull sends without map_indexes: the request goes unanswered and the trigger hangs
        raise ValueError(
            f"{sensor.task_id}: start_from_trigger=True cannot render {name}={value!r}: in the "
            "triggerer, xcom_pull works only with map_indexes given (Airflow 3.3.2 leaves the "
            "other request unanswered, so the sensor would hang until its timeout). Write "
            "ti.xcom_pull(task_ids='...', map_indexes=-1), or pass the upstream task's output "
            "(request_id=submit.output)."
        )


def configure(sensor: _Sensor) -> None:
    """Check the sensor can start in the triggerer (Airflow 3.3+); set ``start_trigger_args``."""
    from airflow.triggers.base import StartTriggerArgs

    from modelslab_provider.triggers.base import is_template
    from modelslab_provider.triggers.task_end import START_TIMEOUT_MARGIN, static_reason

    sensor.deferrable = True  # whenever a worker runs it (3.1/3.2, a mapped sensor), it defers at once
    if AIRFLOW_V_3_3_PLUS:  # 3.1/3.2 ignore start_trigger_args (module text): a worker renders templates
        for name in FIELDS:
            value = as_template(sensor, name, getattr(sensor, name))
            if value is not getattr(sensor, name):
                setattr(sensor, name, value)
            if is_template(value):
                _check_template(sensor, name, value)
    end_task: dict[str, Any] | None = None
    if sensor.end_in_triggerer:
        reason = static_reason(sensor)
        if reason is None:
            end_task = {
                "kind": "sensor",
                "started_in_triggerer": True,
                "push_return": bool(sensor.do_xcom_push),
                "skip_on_failure": bool(sensor.soft_fail or sensor.never_fail),
            }
    timeout = float(sensor.timeout) + (START_TIMEOUT_MARGIN if end_task else 0.0)
    limit = f"timeout of {float(sensor.timeout):.0f} s"
    sensor.start_trigger_args = dataclasses.replace(
        StartTriggerArgs(
            trigger_cls=CLASSPATH,
            trigger_kwargs={},
            next_method="execute_complete",
            next_kwargs=None,
            timeout=None,
        ),
        trigger_kwargs={
            **{name: getattr(sensor, name) for name in FIELDS},
            "poll_policy": sensor._trigger_policy(),
            "limit": limit,
            "end_task": end_task,
        },
        timeout=timedelta(seconds=timeout),
    )
