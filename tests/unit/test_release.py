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


def _min_constraints() -> ModuleType:
    spec = importlib.util.spec_from_file_location("min_constraints", REPO / "scripts" / "min_constraints.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
