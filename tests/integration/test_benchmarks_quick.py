"""Every benchmark once in ``--quick`` mode, so none can rot unnoticed.

The assertions check that each benchmark produced well-formed figures (counts add up, every
waiting trigger delivered exactly one event, the markdown names every section); never timings,
which a shared CI machine cannot promise. The live-Airflow benchmarks start a real scheduler,
triggerer and dag-processor, so this module needs the same environment as the integration tests.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from benchmarks import run as bench
from benchmarks.common import Result

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Result], str]:
    out: Path = tmp_path_factory.mktemp("bench") / "RESULTS.md"
    results = bench.main(["--quick", "--out", str(out)])
    return {r.name: r for r in results}, out.read_text()


def finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def test_every_benchmark_ran_and_reported_its_goals(quick: tuple[dict[str, Result], str]) -> None:
    results, markdown = quick
    assert sorted(results) == sorted(bench.NAMES)
    for result in results.values():
        assert result.skipped is None, result.skipped
        assert result.rows, result.name
        assert result.goals, result.name
        assert result.markdown.strip(), result.name
        assert f"## {result.title}" in markdown
    assert "## Goals" in markdown
    assert "Quick mode" in markdown


def test_triggerer_scale_counts_add_up(quick: tuple[dict[str, Result], str]) -> None:
    rows = quick[0]["scale"].rows
    assert {r["arm"] for r in rows} == {"ours", "http_hook", "http_event", "bare"}
    for r in rows:
        n = r["n"]
        assert r["crashed"] == []
        assert r["events_total"] == r["triggers_one_event"] == r["success_events"] == n, r
        assert r["triggers_several_events"] == 0
        assert r["polls"] >= n  # every trigger polled at least once
        assert r["fetches_after_terminal"] == 0
        for key in ("cpu_ms_per_poll", "kb_per_trigger", "lag_p99_ms", "busy_lag_p99_ms", "raw_request_ms"):
            assert finite(r[key]), (key, r)
        assert r["cpu_ms_per_poll"] > 0
        assert 0 <= r["setup_polls"] <= r["polls"]
    assert "Profile of our arm" in quick[1]


def test_polling_simulation_is_consistent(quick: tuple[dict[str, Result], str]) -> None:
    rows = {r["policy"]: r for r in quick[0]["polling"].rows}
    fixed = [rows[f"fixed {i} s (any ETA)"] for i in (10, 30, 60)]
    assert [f["calls"] for f in fixed] == sorted((f["calls"] for f in fixed), reverse=True)
    assert [f["mean_delay"] for f in fixed] == sorted(f["mean_delay"] for f in fixed)
    for r in rows.values():
        assert r["calls"] >= 1
        assert 0 <= r["mean_delay"] <= r["p95_delay"] or r["p95_delay"] == 0


def test_parse_cost_measured_every_variant(quick: tuple[dict[str, Result], str]) -> None:
    rows = {r["variant"]: r for r in quick[0]["parse"].rows}
    assert set(rows) == {"baseline (airflow.sdk only)", "this provider", "HTTP provider"}
    for r in rows.values():
        assert finite(r["median_ms"])
        assert r["median_ms"] > 0
    assert "requests" in rows["HTTP provider"]["http_libraries"]


def test_worker_slots_counted_every_run(quick: tuple[dict[str, Result], str]) -> None:
    rows = {r["mode"]: r for r in quick[0]["slots"].rows}
    assert set(rows) == {"poke", "reschedule", "deferrable"}
    for r in rows.values():
        assert r["task_instances"] >= 1
        assert r["worker_runs"] >= r["task_instances"]
        assert finite(r["slot_seconds"])
        assert r["slot_seconds"] > 0
    # a deferred sensor runs on a worker at least once per wait, up to its deferral; on Airflow 3.3
    # its trigger ends the task (end_from_trigger), so no second run resumes it: the counts of
    # that difference are checked by test_waits_ended_in_the_triggerer_use_fewer_worker_runs
    deferrable = rows["deferrable"]
    assert deferrable["worker_runs"] >= deferrable["task_instances"]
    # a poking sensor runs once per try (the DAG allows one retry for a scheduler race under load)
    assert rows["poke"]["worker_runs"] == rows["poke"]["task_instances"] + rows["poke"]["retries"]


def test_reaction_time_decomposes(quick: tuple[dict[str, Result], str]) -> None:
    rows = quick[0]["reaction"].rows
    items = next(r["items"] for r in rows if r["figure"] == "per video")
    assert items
    for item in items:
        assert item["detection"] >= 0
        assert item["reaction"] == pytest.approx(item["detection"] + item["airflow"])
        assert item["bound"] > 0


def test_every_markdown_table_is_rectangular(quick: tuple[dict[str, Result], str]) -> None:
    """Each row of every table in RESULTS.md has as many cells as its header."""
    tables: list[list[str]] = []
    previous = ""
    for line in quick[1].splitlines():
        if line.startswith("| ") and not previous.startswith("|"):
            tables.append([])
        if line.startswith("|") and not line.startswith("|---"):
            tables[-1].append(line)
        previous = line
    assert len(tables) >= 6
    for rows in tables:
        widths = {row.count(" | ") for row in rows}
        assert len(widths) == 1, rows


def test_batch_benchmark_counts(quick: tuple[dict[str, Result], str]) -> None:
    """One paid submit per batch, fewer fetches per video, half the price (quick size: 6 videos)."""
    batch, single = quick[0]["batch"].rows
    assert batch["paid_submits"] == 1
    assert single["paid_submits"] == 6
    assert batch["task_instances"] == 1
    assert single["task_instances"] == 6
    assert batch["fetches"] >= 1
    assert batch["fetches_per_video"] < single["fetches_per_video"]
    assert batch["price_units"] * 2 == single["price_units"] == 6
    for row in (batch, single):
        assert finite(row["slot_seconds"])
        assert row["slot_seconds"] > 0


def test_waits_ended_in_the_triggerer_use_fewer_worker_runs(quick: tuple[dict[str, Result], str]) -> None:
    """Counts, not timings: a started sensor never runs on a worker, an ended one only for its first poke."""
    results, _ = quick
    slots = results["end"].rows[0]["slots"]
    assert slots["start"]["worker_runs"] == 0
    assert slots["end"]["worker_runs"] == slots["end"]["tasks"]
    assert slots["poke"]["worker_runs"] == slots["poke"]["tasks"]
