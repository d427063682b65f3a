"""Waits that end in the triggerer, under a real scheduler, triggerer, dag-processor and LocalExecutor.

``airflow dags test`` resumes every task on the worker, whatever the trigger yields; only real
components show the worker-free path. One DAG run (``dags/trigger_end_live.py``) holds every cell;
the triggerer is stopped and replaced while ``slow`` waits.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from modelslab_provider.simulator import Simulator
from tests.integration.airflow_run import TEST_DAGS, AirflowComponents, free_port, live_env, migrate

DAG_ID = "trigger_end_live"
pytestmark = pytest.mark.integration


def _task_logs(home: Path, task: str) -> str:
    """Every log file of the task: its worker attempts and its trigger runs (one per triggerer)."""
    folder = home / "logs" / f"dag_id={DAG_ID}"
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.parent.name == f"task_id={task}")
    return "\n".join(p.read_text(errors="replace") for p in files)


def _worker_runs(home: Path, task: str) -> int:
    """How many times a worker ran the task (any try): each run opens its log with "Pre Execute"."""
    folder = home / "logs" / f"dag_id={DAG_ID}"
    return sum(
        p.read_text(errors="replace").count("::group::Pre Execute")
        for p in folder.rglob(f"task_id={task}/attempt=*.log")
        if ".trigger." not in p.name
    )


def test_waits_end_in_the_triggerer(tmp_path: Path, sim: Simulator) -> None:
    home = tmp_path / "airflow"
    migrate(home)
    (home / "dags" / "trigger_end_live.py").symlink_to(TEST_DAGS / "trigger_end_live.py")
    env = live_env(home, sim.url, api_port=free_port(), parallelism=4)
    with AirflowComponents(home, env) as af:
        af.start("api-server", "dag-processor", "scheduler", "triggerer")
        af.wait_until(
            "the DAG to be parsed", lambda: af.query("SELECT 1 FROM dag WHERE dag_id=?", DAG_ID), 120
        )
        triggered = af.airflow("dags", "trigger", DAG_ID)
        assert triggered.returncode == 0, triggered.stdout + triggered.stderr
        run_id = af.wait_until(
            "the DAG run", lambda: af.query("SELECT run_id FROM dag_run WHERE dag_id=?", DAG_ID), 60
        )[0][0]

        def ti(task: str, map_index: int = -1) -> dict[str, Any]:
            rows = af.query(
                "SELECT state, try_number, hostname, queued_dttm FROM task_instance "
                "WHERE dag_id=? AND run_id=? AND task_id=? AND map_index=?",
                DAG_ID,
                run_id,
                task,
                map_index,
            )
            state, tries, host, queued = rows[0] if rows else (None, 0, None, None)
            return {"state": state, "tries": tries, "host": host, "queued": queued}

        # a triggerer stopped mid-wait: the next one still ends ``slow`` exactly once
        af.wait_until("slow to defer", lambda: ti("slow")["state"] == "deferred", 180)

        def slow_job() -> int | None:
            rows = af.query(
                "SELECT value FROM xcom WHERE dag_id=? AND run_id=? AND task_id='slow' AND key='request_id'",
                DAG_ID,
                run_id,
            )
            return int(json.loads(rows[0][0])) if rows else None

        def slow_polls() -> int:
            job = sim.state.jobs.get(slow_job() or 0)
            return job.polls if job is not None else 0

        # every other wait is over first, so the kill below cannot cut off what their triggers
        # still had to write (the DAG's last task, ``probe``, waits for ``slow``)
        def others_running() -> list[Any]:
            return af.query(
                "SELECT task_id, map_index, state FROM task_instance WHERE dag_id=? AND run_id=? "
                "AND task_id NOT IN ('slow', 'probe') "
                "AND (state IS NULL OR state NOT IN ('success', 'failed', 'skipped', 'upstream_failed'))",
                DAG_ID,
                run_id,
            )

        af.wait_until("every task but slow to end", lambda: not others_running(), 240)
        # the triggerer has polled the job (the worker's submit does not poll it)
        af.wait_until("the triggerer to poll for slow", lambda: slow_polls() >= 2, 120)
        old = af.procs.pop("triggerer")
        os.killpg(old.pid, signal.SIGKILL)
        old.wait(timeout=30)
        polls_before_kill = slow_polls()
        time.sleep(2)
        af.start("triggerer")
        # the new triggerer takes the wait over (it polls the job again); then the video is done
        af.wait_until("the new triggerer to poll for slow", lambda: slow_polls() > polls_before_kill, 180)
        assert sim.complete(slow_job())

        state = af.wait_until(
            "the DAG run to finish",
            lambda: af.query(
                "SELECT state FROM dag_run WHERE run_id=? AND state IN ('success', 'failed')", run_id
            ),
            400,
        )[0][0]
        states = {
            t: ti(t)
            for t in (
                "gen_trigger",
                "gen_worker",
                "slow",
                "fail_final",
                "timeout_retry",
                "batch_trigger",
                "batch_worker",
                "batch_partial",
                "batch_fail_final",
                "sensor_start",
                "sensor_deferred",
                "soft_fail",
                "soft_timeout",
                "probe",
            )
        }
        assert state == "failed", states  # fail_final and timeout_retry fail, as they must
        summary = {t: (s["state"], s["tries"]) for t, s in states.items()}
        assert summary == {
            "gen_trigger": ("success", 1),
            "gen_worker": ("success", 1),
            "slow": ("success", 1),
            "fail_final": ("failed", 1),  # a job failure: no retry, though retries=2
            "timeout_retry": ("failed", 2),  # a timeout: retried once (retries=1), then failed
            "batch_trigger": ("success", 1),
            "batch_worker": ("success", 1),
            "batch_partial": ("success", 1),
            "batch_fail_final": ("failed", 1),  # a failed entry: final, no retry, though retries=2
            "sensor_start": ("success", 1),
            "sensor_deferred": ("success", 1),
            "soft_fail": ("skipped", 1),
            "soft_timeout": ("skipped", 1),
            "probe": ("success", 1),
        }, af.logs_tail()
        # the sensor started in the triggerer was never queued for, nor run by, a worker
        assert states["sensor_start"]["queued"] is None, states["sensor_start"]
        assert not states["sensor_start"]["host"], states["sensor_start"]
        mapped = af.query(
            "SELECT map_index, state FROM task_instance WHERE dag_id=? AND run_id=? AND task_id='each'",
            DAG_ID,
            run_id,
        )
        assert [s for _, s in mapped] == ["success"], mapped
        # the README's pattern over a partly failed batch ended in the triggerer: one task per video
        per_input = af.query(
            "SELECT map_index, state FROM task_instance WHERE dag_id=? AND run_id=? AND task_id='each_input'",
            DAG_ID,
            run_id,
        )
        assert sorted(per_input) == [(0, "success"), (1, "success")], per_input

        # what downstream tasks receive is the same from both paths, type for type
        raw = af.query(
            "SELECT value FROM xcom WHERE dag_id=? AND run_id=? AND task_id='probe' AND key='return_value'",
            DAG_ID,
            run_id,
        )[0][0]
        seen = json.loads(raw) if isinstance(raw, str) else raw
        assert seen["gen_trigger"] == seen["gen_worker"] == seen["slow"], seen
        assert seen["gen_trigger"]["return_value"] == ["list", ["str"]], seen
        assert seen["gen_trigger"]["video_url"] == "str"
        assert seen["gen_trigger"]["meta"] == "dict"
        # the sensor's worker path pushes the same list of URLs as the operator's (tests/unit)
        assert seen["sensor_start"] == seen["sensor_deferred"] == seen["gen_worker"]["return_value"], seen
        assert seen["batch_trigger"] == seen["batch_worker"] == ["list", ["list"]], seen
        assert seen["batch_results"] == ["list", ["dict"]], seen
        assert all(u.endswith(".mp4") for u in seen["urls"]), seen
        assert len(seen["batch_urls"]) == 3
        # the engine's batch XComs (record and outputs) match the worker path's, key for key
        assert seen["batch_trigger_keys"] == seen["batch_worker_keys"], seen
        assert seen["batch_trigger_keys"]["batch_ids"] == ["list", ["str"]], seen
        assert seen["gen_trigger"]["track_id"] == "str", seen
        assert seen["partial_results"] == ["success", "failed", "success"], seen
        assert len(seen["partial_urls"]) == 2, seen  # the successful inputs only
        assert seen["batch_partial_keys"]["return_value"] == ["list", ["list"]], seen

        # which path each task took: how often a worker ran it (each run opens its log with a
        # "Pre Execute" group; a wait ended in the triggerer ran once, up to its deferral) ...
        logs = {t: _task_logs(home, t) for t in states}
        runs = {task: _worker_runs(home, task) for task in states}
        assert runs == {
            **{t: runs[t] for t in ("soft_fail", "soft_timeout", "probe")},  # either way is right
            "gen_trigger": 1,
            "slow": 1,
            "batch_trigger": 1,
            "batch_partial": 1,
            "sensor_deferred": 1,
            "timeout_retry": 2,  # two tries, each ended in the triggerer
            "gen_worker": 2,  # deferred, then resumed
            "batch_worker": 2,
            "fail_final": 2,
            "batch_fail_final": 2,
            "sensor_start": 0,
        }, runs

        # ... and what its trigger logged. A trigger's last lines can reach the triggerer's
        # supervisor after it closed the trigger's log file; Airflow then writes them to the
        # triggerer's own log, without the task's name. So a line missing from some tasks' files
        # must be there at least as often.
        triggerer_logs = af.log("triggerer")  # both triggerers' own logs

        def trigger_logged(text: str, *tasks: str) -> None:
            missing = [t for t in tasks if text not in logs[t]]
            assert len(missing) <= triggerer_logs.count(text), (
                text,
                missing,
                [logs[t][-2000:] for t in missing],
            )

        trigger_logged(
            "Ended the task in the triggerer: success",
            "gen_trigger",
            "slow",
            "batch_trigger",
            "batch_partial",
            "sensor_start",
            "sensor_deferred",
        )
        assert "Ended the task in the triggerer" not in logs["gen_worker"]
        assert "ModelsLab video ready" in logs["gen_worker"]  # the worker's own completion line
        assert "ModelsLab video ready" not in logs["gen_trigger"]
        assert logs["slow"].count("Ended the task in the triggerer: success") <= 1
        trigger_logged("Skipping (soft_fail/never_fail)", "soft_fail", "soft_timeout")
        trigger_logged("Ended the task in the triggerer: failed", "timeout_retry")
        trigger_logged("ModelsLab has no cancel API", "timeout_retry")  # the operator's own text
        assert "Ended the task in the triggerer" not in logs["fail_final"]  # resumed: no retry
        assert "Ended the task in the triggerer" not in logs["batch_fail_final"]
        assert "1 of 3 ModelsLab videos failed" in logs["batch_fail_final"]  # the worker's own text
        # the sensor started in the triggerer never ran its worker code
        assert "deferring to the triggerer" not in logs["sensor_start"]
        # issue 25: the triggerer's completion line is a summary, not the whole event
        fired = [line for line in triggerer_logs.splitlines() if "Trigger fired event" in line]
        assert all('"details"' not in line and "'details'" not in line for line in fired), fired
