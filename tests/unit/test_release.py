"""Release plumbing: the declared dependency floors that CI installs, and the single version string."""

from __future__ import annotations

import importlib.util
import tomllib
from importlib.metadata import version
from pathlib import Path
from types import ModuleType

import pytest

import modelslab_provider

REPO = Path(__file__).resolve().parents[2]


def _script(name: str) -> ModuleType:
    """``scripts/<name>.py`` as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _min_constraints() -> ModuleType:
    return _script("min_constraints")


def test_every_runtime_dependency_but_airflow_gets_its_floor_pinned() -> None:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = _min_constraints().floors(deps)
    names = {pin.split("==")[0] for pin in pins}
    assert names == {d.split(">=")[0].strip() for d in deps} - {"apache-airflow"}
    for pin in pins:
        name, floor = pin.split("==")
        assert f"{name}>={floor}" in deps


@pytest.mark.parametrize(
    ("spec", "pin"),
    [
        ("aiohttp>=3.10", "aiohttp==3.10"),
        ("requests[socks] >= 2.32.2, <3", "requests==2.32.2"),
        ("foo>=1.2; python_version < '3.12'", "foo==1.2"),
    ],
)
def test_floor_spellings(spec: str, pin: str) -> None:
    assert _min_constraints().floors([spec]) == [pin]


@pytest.mark.parametrize("spec", ["aiohttp", "aiohttp<4", "aiohttp==3.10"])
def test_a_dependency_without_a_floor_is_refused(spec: str) -> None:
    with pytest.raises(SystemExit, match="no '>=' floor"):
        _min_constraints().floors([spec])


def test_check_pins_tells_installed_from_pinned(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    check = _min_constraints().check
    good = tmp_path / "good.txt"
    good.write_text(f"# comment\npytest=={version('pytest')}\n")
    assert check(good) == 0
    bad = tmp_path / "bad.txt"
    bad.write_text("pytest==0.0.1\nno-such-distribution-xyz==1.0\n")
    assert check(bad) == 1
    out = capsys.readouterr()
    assert "pytest: pinned 0.0.1" in out.out
    assert "no-such-distribution-xyz: pinned 1.0, installed not installed" in out.out
    assert "pytest, no-such-distribution-xyz" in out.err


def test_the_distribution_version_is_the_package_version() -> None:
    assert version("airflow-provider-modelslab") == modelslab_provider.__version__


def _check_metadata() -> ModuleType:
    return _script("check_metadata")


def test_installed_metadata_has_the_classifiers_and_urls_the_wheel_check_asks_for() -> None:
    """The METADATA pip wrote from pyproject.toml passes the built-wheel step's check (issue 25)."""
    from importlib.metadata import distribution

    dist = distribution("airflow-provider-modelslab")
    # METADATA in site-packages; PKG-INFO when the checkout's editable *.egg-info is found first
    metadata = dist.read_text("METADATA") or dist.read_text("PKG-INFO")
    assert metadata is not None
    assert _check_metadata().missing_metadata(metadata) == []


def test_the_metadata_check_names_what_is_missing() -> None:
    metadata = (
        "Metadata-Version: 2.4\nName: x\nClassifier: Topic :: Multimedia :: Video\n"
        "Project-URL: Source, https://example.invalid/src\n"
    )
    missing = _check_metadata().missing_metadata(metadata)
    assert "classifier Development Status ::..." in missing
    assert "classifier Intended Audience ::..." in missing
    assert "classifier Topic ::..." not in missing
    assert "Project-URL Documentation" in missing
    assert "Project-URL Changelog" in missing
    assert "Project-URL Issues" in missing
    assert "Project-URL Source" not in missing
    assert "License-Expression" in missing
