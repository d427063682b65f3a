"""Provider registration: entry point, schema, ProvidersManager, and the connection form declared both ways.

Airflow 3.2+ reads ``conn-fields`` / ``ui-field-behaviour`` from provider info; 3.1 calls the hook's
``get_connection_form_widgets()`` / ``get_ui_field_behaviour()``. Both come from one declaration in
``connection_form.py``; these tests make sure the two renderings agree and reach the UI.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import subprocess
import sys
import types
from importlib import resources
from typing import Any

import jsonschema
import pytest

from modelslab_provider import __version__
from modelslab_provider.client.errors import ModelsLabConfigError
from modelslab_provider.hooks.modelslab import ModelsLabHook, settings_from_connection

DIST = "airflow-provider-modelslab"
ENTRY_POINT = "modelslab_provider.get_provider_info:get_provider_info"


def entry_point() -> importlib.metadata.EntryPoint:
    found = [
        ep
        for ep in importlib.metadata.entry_points(group="apache_airflow_provider")
        if ep.value == ENTRY_POINT
    ]
    assert len(found) == 1, f"expected one apache_airflow_provider entry point {ENTRY_POINT}, found {found}"
    return found[0]


@pytest.fixture(scope="module")
def info() -> dict[str, Any]:
    loaded = entry_point().load()()
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def conn_type(info: dict[str, Any]) -> dict[str, Any]:
    (entry,) = [c for c in info["connection-types"] if c["connection-type"] == "modelslab"]
    return entry


def run_python(code: str) -> str:
    """Run ``code`` in a fresh interpreter of this venv (import side effects stay out of this process)."""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout.strip().splitlines()[-1]


# --------------------------------------------------------------------------- registration


def test_entry_point_belongs_to_our_distribution_and_names_it(info: dict[str, Any]) -> None:
    dist = entry_point().dist
    assert dist is not None
    # Airflow compares these literally and refuses the provider when they differ
    assert info["package-name"] == dist.metadata["Name"] == DIST
    assert info["versions"][0] == __version__ == dist.version


def test_provider_info_validates_against_airflows_own_schema(info: dict[str, Any]) -> None:
    schema = json.loads(resources.files("airflow").joinpath("provider_info.schema.json").read_text())
    jsonschema.validate(info, schema)


def test_provider_info_points_at_importable_code(info: dict[str, Any]) -> None:
    modules = [
        m
        for section in ("hooks", "operators", "sensors", "triggers")
        for e in info[section]
        for m in e["python-modules"]
    ]
    for module in modules:
        importlib.import_module(module)
    for dotted in [*info.get("extra-links", []), info["connection-types"][0]["hook-class-name"]]:
        module, _, name = dotted.rpartition(".")
        assert hasattr(importlib.import_module(module), name), dotted


def test_providers_manager_knows_the_provider_and_the_modelslab_hook() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert DIST in manager.providers
    assert manager.providers[DIST].version == __version__
    try:  # 3.3 moved hook discovery for tasks to the task SDK; 3.1 has only ProvidersManager
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

        hooks = ProvidersManagerTaskRuntime().hooks
    except ImportError:
        hooks = manager.hooks
    hook = hooks["modelslab"]
    assert hook is not None
    assert hook.hook_class_name == "modelslab_provider.hooks.modelslab.ModelsLabHook"
    assert hook.connection_id_attribute_name == "modelslab_conn_id"
    assert hook.hook_name == "ModelsLab"


def test_get_provider_info_is_cheap_to_import() -> None:
    """The API server reads provider info for every provider: no Airflow, no HTTP library."""
    loaded = run_python(
        "import json, sys; import modelslab_provider.get_provider_info as m; m.get_provider_info(); "
        "print(json.dumps(sorted(n for n in ('airflow', 'requests', 'aiohttp') if n in sys.modules)))"
    )
    assert json.loads(loaded) == []


#: one fresh interpreter answers two questions (an Airflow import costs seconds): which HTTP libraries
#: importing the hook and the client pulls in, then what the UI's hook_meta service says about us
_FRESH_PROCESS_PROBE = """
import json, sys
import modelslab_provider.hooks.modelslab, modelslab_provider.client
print("PROBE", json.dumps(sorted(n for n in ("requests", "aiohttp") if n in sys.modules)))
from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
(meta,) = [m for m in HookMetaService.hook_meta_data() if m.connection_type == "modelslab"]
print("PROBE", json.dumps(meta.model_dump(mode="json"), default=str))
"""


@pytest.fixture(scope="module")
def fresh_process() -> list[Any]:
    proc = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS_PROBE], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    # only the probe's own lines: Airflow 3.2 logs a deprecation warning to stdout in between
    answers = [json.loads(line[6:]) for line in proc.stdout.splitlines() if line.startswith("PROBE ")]
    assert len(answers) == 2, proc.stdout[-4000:]
    return answers


def test_hook_and_client_import_no_http_library(fresh_process: list[Any]) -> None:
    assert fresh_process[0] == []


# --------------------------------------------------------------------------- connection form, both ways


class _Field:
    """Records what the hook passes to a wtforms field."""

    def __init__(
        self,
        label: str | None = None,
        validators: list[Any] | None = None,
        description: str = "",
        default: Any = None,
        widget: Any = None,
        **kwargs: Any,
    ) -> None:
        self.label, self.validators, self.description, self.default = (
            label,
            list(validators or []),
            description,
            default,
        )
        self.widget, self.kwargs = widget, kwargs


class _NumberRange:
    def __init__(
        self, min: float | None = None, max: float | None = None, message: str | None = None
    ) -> None:
        self.min, self.max = min, max


class _Optional:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass


class _AnyOf:
    def __init__(self, values: list[Any], *args: Any, **kwargs: Any) -> None:
        self.values = values


def fake_form_modules() -> dict[str, types.ModuleType]:
    """Small stand-ins for wtforms / flask_appbuilder / flask_babel (FAB is not installed with Airflow 3)."""
    wtforms = types.ModuleType("wtforms")
    for name in ("StringField", "IntegerField", "PasswordField", "BooleanField"):
        setattr(wtforms, name, type(name, (_Field,), {}))
    validators = types.ModuleType("wtforms.validators")
    validators.NumberRange = _NumberRange  # type: ignore[attr-defined]
    validators.Optional = _Optional  # type: ignore[attr-defined]
    validators.InputRequired = _Optional  # type: ignore[attr-defined]
    validators.AnyOf = validators.any_of = _AnyOf  # type: ignore[attr-defined]
    wtforms.validators = validators  # type: ignore[attr-defined]
    fab = types.ModuleType("flask_appbuilder")
    widgets = types.ModuleType("flask_appbuilder.fieldwidgets")
    for name in ("BS3TextFieldWidget", "BS3PasswordFieldWidget", "BS3TextAreaFieldWidget"):
        setattr(widgets, name, type(name, (), {}))
    fab.fieldwidgets = widgets  # type: ignore[attr-defined]
    babel = types.ModuleType("flask_babel")
    babel.lazy_gettext = lambda text: text  # type: ignore[attr-defined]
    return {
        "wtforms": wtforms,
        "wtforms.validators": validators,
        "flask_appbuilder": fab,
        "flask_appbuilder.fieldwidgets": widgets,
        "flask_babel": babel,
    }


@pytest.fixture
def widgets(monkeypatch: pytest.MonkeyPatch) -> dict[str, _Field]:
    for name, module in fake_form_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    return ModelsLabHook.get_connection_form_widgets()


#: which wtforms field Airflow's legacy form uses for each JSON-schema type (only these four are allowed)
FIELD_FOR_TYPE = {
    "integer": "IntegerField",
    "number": "StringField",
    "string": "StringField",
    "boolean": "BooleanField",
}


def main_type(schema: dict[str, Any]) -> str:
    types_ = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    (main,) = [t for t in types_ if t != "null"]
    return str(main)


def test_conn_fields_and_widgets_have_the_same_keys_labels_and_descriptions(
    conn_type: dict[str, Any], widgets: dict[str, _Field]
) -> None:
    fields = conn_type["conn-fields"]
    assert set(widgets) == set(fields)
    for name, field in fields.items():
        assert widgets[name].label == field["label"], name
        assert widgets[name].description == field.get("description", ""), name


def test_conn_fields_and_widgets_have_matching_types_and_defaults(
    conn_type: dict[str, Any], widgets: dict[str, _Field]
) -> None:
    for name, field in conn_type["conn-fields"].items():
        schema, widget = field["schema"], widgets[name]
        kind = main_type(schema)
        expected_class = "PasswordField" if schema.get("format") == "password" else FIELD_FOR_TYPE[kind]
        assert type(widget).__name__ == expected_class, name
        if "default" in schema:
            coerce = {"integer": int, "number": float, "boolean": bool, "string": str}[kind]
            assert coerce(widget.default) == schema["default"], name
        nullable = "null" in (schema["type"] if isinstance(schema["type"], list) else [schema["type"]])
        if kind == "integer":
            assert any(isinstance(v, _Optional) for v in widget.validators) == nullable, name


def test_conn_fields_and_widgets_have_the_same_number_ranges(
    conn_type: dict[str, Any], widgets: dict[str, _Field]
) -> None:
    """A wtforms NumberRange must equal the schema bounds; integer fields with bounds must carry one.

    ``number`` fields are StringFields on 3.1 (Airflow's legacy form has no float field), which
    cannot hold a NumberRange; their bounds are enforced by the hook at run time (next test).
    """
    for name, field in conn_type["conn-fields"].items():
        schema = field["schema"]
        ranges = [v for v in widgets[name].validators if isinstance(v, _NumberRange)]
        bounds = (schema.get("minimum"), schema.get("maximum"))
        if main_type(schema) == "integer" and bounds != (None, None):
            assert len(ranges) == 1, name
        for number_range in ranges:
            assert (number_range.min, number_range.max) == bounds, name


@pytest.mark.parametrize("name", ["timeout", "max_retries"])
def test_hook_accepts_exactly_the_declared_range(conn_type: dict[str, Any], name: str) -> None:
    schema = conn_type["conn-fields"][name]["schema"]
    conn = types.SimpleNamespace(conn_id="modelslab_range", password="sk-range-test", host="", port=None)
    for ok in (schema["minimum"], schema["maximum"], schema["default"]):
        settings_from_connection(conn, {name: ok})  # type: ignore[arg-type]
    with pytest.raises(ModelsLabConfigError, match="modelslab_range"):
        settings_from_connection(conn, {name: schema["maximum"] + 1})  # type: ignore[arg-type]


def test_ui_field_behaviour_is_declared_identically(conn_type: dict[str, Any]) -> None:
    declared = conn_type["ui-field-behaviour"]
    legacy = ModelsLabHook.get_ui_field_behaviour()
    assert sorted(declared["hidden-fields"]) == sorted(legacy["hidden_fields"])
    assert declared["relabeling"] == legacy["relabeling"]
    assert declared["placeholders"] == legacy["placeholders"]
    standard = {"description", "host", "port", "login", "password", "schema", "extra"}
    assert set(declared["hidden-fields"]) <= standard
    assert {"password", "host"}.isdisjoint(declared["hidden-fields"])
    assert legacy["relabeling"]["password"] == "API Key"
    assert set(legacy["placeholders"]) <= standard | set(conn_type["conn-fields"])


def test_the_ui_shows_our_form_on_this_airflow_version(
    conn_type: dict[str, Any], fresh_process: list[Any]
) -> None:
    """What the React connection form receives (``/ui/connections/hook_meta``), on 3.1 and 3.3 alike."""
    meta = fresh_process[1]
    assert meta["hook_name"] == "ModelsLab"
    assert meta["hook_class_name"] == "modelslab_provider.hooks.modelslab.ModelsLabHook"
    fields = conn_type["conn-fields"]
    extra = meta["extra_fields"]
    assert set(extra) == set(fields)
    for name, field in fields.items():
        assert extra[name]["schema"]["title"] == field["label"]
        assert float(extra[name]["value"]) == field["schema"]["default"]
    behaviour = conn_type["ui-field-behaviour"]
    standard = meta["standard_fields"]
    assert standard["password"]["title"] == "API Key"
    assert not standard["password"]["hidden"]
    assert standard["host"]["title"] == behaviour["relabeling"]["host"]
    assert standard["host"]["placeholder"] == behaviour["placeholders"]["host"]
    for hidden in behaviour["hidden-fields"]:
        shown_as = {"schema": "url_schema"}.get(hidden, hidden)
        if shown_as in standard:
            assert standard[shown_as]["hidden"], hidden
