"""The Celery-deployment section of benchmarks/RESULTS.md survives both of the scripts that write the file."""

from __future__ import annotations

from pathlib import Path

from benchmarks.celery_airflow import END_MARK, START_MARK, write_section
from benchmarks.run import _keep_celery_section


def _section(text: str) -> str:
    return f"{START_MARK}\n## Celery deployment\n\n{text}\n{END_MARK}"


def test_write_section_appends_then_replaces(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## 1. Triggerer scale\n\nfigures\n")
    write_section(_section("first run"), results)
    write_section(_section("second run"), results)
    text = results.read_text()
    assert text.startswith("# Benchmark results\n\n## 1. Triggerer scale\n\nfigures\n")
    assert text.count(START_MARK) == 1
    assert "second run" in text
    assert "first run" not in text


def test_run_py_keeps_the_section_when_it_rewrites_the_file(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# old results\n\n" + _section("celery figures") + "\n")
    rewritten = _keep_celery_section(results, "# new results\n")
    assert rewritten.startswith("# new results\n")
    assert "# old results" not in rewritten
    assert _section("celery figures") in rewritten


def test_run_py_adds_nothing_without_a_section(tmp_path: Path) -> None:
    assert _keep_celery_section(tmp_path / "missing.md", "# new\n") == "# new\n"
