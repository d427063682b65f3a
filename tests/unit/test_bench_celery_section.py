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


def test_run_py_keeps_the_real_triggerer_section_too(tmp_path: Path) -> None:
    from benchmarks.celery_airflow import TRIG_END, TRIG_START

    results = tmp_path / "RESULTS.md"
    real = f"{TRIG_START}\n## real triggerer\n{TRIG_END}"
    results.write_text("# old\n\n" + _section("celery figures") + "\n\n" + real + "\n")
    write_section(f"{TRIG_START}\nnew figures\n{TRIG_END}", results, TRIG_START, TRIG_END)
    assert "new figures" in results.read_text()
    assert _section("celery figures") in results.read_text()
    rewritten = _keep_celery_section(results, "# new results\n")
    assert _section("celery figures") in rewritten
    assert f"{TRIG_START}\nnew figures\n{TRIG_END}" in rewritten


def test_profile_summary_counts_own_and_inclusive_samples_per_process() -> None:
    from benchmarks.celery_airflow import summarise_profile

    loop = "run_once (airflow/jobs/triggerer_job_runner.py:697)"
    query = "do_execute (sqlalchemy/engine/default.py:1191)"
    poll = "_poll (modelslab_provider/triggers/video.py:139)"
    stacks = [
        (["process sup", loop, query], 6),
        (["process sup", loop], 2),
        (["process child", poll, "read (aiohttp/x.py:1)"], 2),
    ]
    summary = summarise_profile(stacks, 10.0)
    assert summary["samples"] == 10
    assert summary["per_process"] == {"sup": 8, "child": 2}
    sup = summary["processes"]["sup"]
    assert sup["own"][0] == (query, 6, 60.0)
    assert sup["inclusive"] == [(loop, 8, 80.0)]  # sqlalchemy is not in the inclusive selection
    assert summary["processes"]["child"]["inclusive"] == [(poll, 2, 20.0)]
