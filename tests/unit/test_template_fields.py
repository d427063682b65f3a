"""Every public argument of every operator and the sensor is templated, or says here why not (issue 25).

A ``params``-driven DAG can set whatever is templated; the reasons below are the arguments it
deliberately cannot set at run time.
"""

from __future__ import annotations

import inspect
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG

from modelslab_provider.operators.batch import ModelsLabVideoBatchOperator
from modelslab_provider.operators.storage import ModelsLabStoreVideosOperator
from modelslab_provider.operators.video import (
    ModelsLabImageToVideoOperator,
    ModelsLabTextToVideoOperator,
    ModelsLabVideoOperator,
)
from modelslab_provider.sensors.video import VideoFetchSensor

CLASSES = [
    ModelsLabVideoOperator,
    ModelsLabTextToVideoOperator,
    ModelsLabImageToVideoOperator,
    ModelsLabVideoBatchOperator,
    ModelsLabStoreVideosOperator,
    VideoFetchSensor,
]

#: arguments that are not templated, and why
NOT_TEMPLATED = {
    "payload@typed": "refused by the typed operators: they build it from their arguments and `parameters`",
    "api_version@typed": "picks the endpoint when the DAG is parsed; template `endpoint` instead",
    "wait_for_completion": "decides the task's shape (its return value, a downstream sensor)",
    "deferrable": "where the task waits (triggerer or worker), as on Airflow's own operators",
    "poll_interval": "seconds, validated when the DAG is parsed",
    "max_poll_interval": "seconds, validated when the DAG is parsed",
    "timeout": "seconds or a timedelta, validated when the DAG is parsed",
    "resubmit_on_ambiguous_failure": "may pay twice: a choice made in the DAG file, never by a run's params",
    "allow_partial_failure": "a bool; a rendered 'False' string would be true",
    "durable": "a bool that decides whether a retry may pay again: a choice made in the DAG file",
    "max_bytes": "a size guard, validated when the DAG is parsed",
    "asset": "an outlet: Airflow needs it when the DAG is parsed",
    "download_attempts": "validated when the DAG is parsed",
    "retry_initial_delay": "seconds, validated when the DAG is parsed",
    "retry_max_delay": "seconds, validated when the DAG is parsed",
    "http_timeout": "seconds, validated when the DAG is parsed",
    "file_timeout": "seconds, validated when the DAG is parsed",
    "allow_private_hosts": "the SSRF guard's opt-out: a run's params must not switch it off",
    "use_env_proxies": (
        "hands the SSRF decision to a proxy: a choice made in the DAG file, not by a run's params"
    ),
    "modelslab_conn_id@store": "names the origin trusted even when private: not a run's choice",
    "poll_policy": "an advanced object, validated and serialized when the DAG is parsed",
    "end_from_trigger": "a bool; a rendered 'False' string would be true (read when the task defers)",
    "start_from_trigger": "Airflow reads it (and the trigger's arguments) when the DAG is parsed",
}


def _reason_key(cls: type, name: str) -> str:
    if name in ("api_version", "payload") and cls in (
        ModelsLabTextToVideoOperator,
        ModelsLabImageToVideoOperator,
    ):
        return f"{name}@typed"
    if name == "modelslab_conn_id" and cls is ModelsLabStoreVideosOperator:
        return "modelslab_conn_id@store"
    return name


def public_arguments(cls: type) -> set[str]:
    """The keyword arguments this provider's own ``__init__`` methods add (not Airflow's)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass.__module__.startswith("modelslab_provider") and "__init__" in vars(klass):
            for p in inspect.signature(klass.__init__).parameters.values():
                if p.kind is p.KEYWORD_ONLY and not p.name.startswith("_"):
                    names.add(p.name)
    return names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_argument_is_templated_or_has_a_reason(cls: type) -> None:
    fields = set(cls.template_fields)  # type: ignore[attr-defined]
    untold = sorted(
        name
        for name in public_arguments(cls)
        if name not in fields and _reason_key(cls, name) not in NOT_TEMPLATED
    )
    assert untold == [], f"{cls.__name__}: template these or say why not in NOT_TEMPLATED: {untold}"
    assert fields <= public_arguments(cls) | {"endpoint", "payload"}, "template_fields names a non-argument"


def test_every_reason_names_an_untemplated_argument() -> None:
    used = {
        _reason_key(cls, name)
        for cls in CLASSES
        for name in public_arguments(cls) - set(cls.template_fields)  # type: ignore[attr-defined]
    }
    assert "api_version" in VideoFetchSensor.template_fields  # the sensor's is templated
    assert set(NOT_TEMPLATED) == used


@pytest.mark.parametrize("cls", [ModelsLabTextToVideoOperator, ModelsLabImageToVideoOperator])
def test_params_set_the_typed_generation_settings(cls: type) -> None:
    """The issue's case: a params-driven DAG sets seed, size, fps, frames, audio and output type."""
    settings: dict[str, Any] = {
        "seed": 7,
        "width": 512,
        "height": 288,
        "fps": 16,
        "num_frames": 25,
        "generate_audio": False,
        "output_type": "gif",
    }
    with DAG(
        "templating",
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        params=settings,
        render_template_as_native_obj=True,
    ) as dag:
        first = {"init_image": "https://images.example/a.png"} if cls is ModelsLabImageToVideoOperator else {}
        op = cls(
            task_id="generate",
            prompt="a fox",
            **first,
            **{name: "{{ params." + name + " }}" for name in settings},
        )
    op.render_template_fields({"params": settings}, jinja_env=dag.get_template_env())
    body = op.build_payload()
    assert {name: body[name] for name in settings} == settings
