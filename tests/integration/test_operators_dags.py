"""The video operators under ``airflow dags test`` against the simulator.

* ``operators_outcomes``: success in every mode, failure, timeout, bad input, API validation.
* ``operators_resume``: retries after a crash mid-wait, after a timeout (sync and deferred) and
  after a terminal failure, each counted on the simulator: no paid work twice.
* ``operators_rate_limit``: 50 mapped deferrable tasks on an account with a queue limit of 5.

Prompts carry a per-run tag so submissions can be counted on the shared simulator.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelslab_provider.client.core import ClientSettings
from modelslab_provider.client.errors import ModelsLabError
from modelslab_provider.client.sync import ModelsLabClient
from modelslab_provider.simulator import Simulator
from modelslab_provider.version_compat import AIRFLOW_V_3_3_PLUS
from tests.integration.airflow_run import CANARY_KEY, TEST_DAGS, DagRunResult, run_dag_test


def submissions(sim: Simulator, tag: str) -> list[dict[str, Any]]:
    """This run's submit requests (any outcome), in order."""
    return [
        r
        for r in sim.requests()
        if r["path"].startswith("/api/v") and "/fetch/" not in r["path"] and tag in json.dumps(r["body"])
    ]


def jobs_for(sim: Simulator, prompt_part: str) -> list[str]:
    """Ids of the jobs created for submissions whose prompt contains ``prompt_part``."""
    return [
        str(r["job_id"])
        for r in sim.requests()
        if r["job_id"] is not None
        and "/fetch/" not in r["path"]
        and prompt_part in json.dumps(r["body"])
        and r["status"] == 200
    ]


def assert_no_key_leak(result: DagRunResult, task_ids: list[str]) -> None:
    assert CANARY_KEY not in result.output
    for task_id in task_ids:
        for key in ("return_value", "request_id", "meta", "video_url"):
            assert CANARY_KEY not in json.dumps(result.xcom(task_id, key))


# --------------------------------------------------------------------------- outcomes


def test_outcomes(sim: Simulator, airflow_home: Path) -> None:
    tag = f"t{uuid.uuid4().hex[:10]}"
    result = run_dag_test(
        airflow_home,
        TEST_DAGS / "operators_outcomes.py",
        "operators_outcomes",
        sim_url=sim.url,
        conf={"tag": tag},
    )

    # success: sync, deferred, instant, v7, image; URLs and the request id reach downstream tasks
    for task_id in ("sync_ok", "deferred_ok", "instant", "fusion_ok", "image_ok"):
        result.assert_state(task_id, "success")
        urls = result.xcom(task_id)
        assert isinstance(urls, list), (task_id, urls)
        assert urls[0].endswith(".mp4"), (task_id, urls)
        assert result.xcom(task_id, "video_url") == urls[0]
        assert isinstance(result.xcom(task_id, "request_id"), str)
        assert result.xcom(task_id, "meta")["id"] == result.xcom(task_id, "request_id")
    assert result.xcom("fusion_ok", "api_version") == "v7"
    for check in ("check_sync_ok", "check_deferred_ok"):
        result.assert_state(check, "success")
        assert result.xcom(check) == 1
    assert "[DAG TEST] running trigger in line" in result.output
    instant_id = result.xcom("instant", "request_id")
    assert sim.stats()["fetches_per_job"][instant_id] == 0

    # the extra link was computed on the worker from XCom
    assert result.xcom("sync_ok", "_link_ModelsLabVideoLink") == result.xcom("sync_ok")[0]

    # dynamic task mapping, deferrable
    for index in range(3):
        result.assert_state("mapped", "success", map_index=index)
        assert result.xcom("mapped", map_index=index)[0].endswith(".mp4")
    mapped_ids = {result.xcom("mapped", "request_id", map_index=i) for i in range(3)}
    assert len(mapped_ids) == 3

    # submit only, then the sensor waits for that request id
    result.assert_state("submit_only", "success")
    # wait_for_completion=False returns the request id: VideoFetchSensor(request_id=op.output) works
    assert result.xcom("submit_only") == result.xcom("submit_only", "request_id")
    result.assert_state("wait_submit_only", "success")
    assert result.xcom("wait_submit_only")[0].endswith(".mp4")

    # a failed job fails at once with the API's message, without using the 2 retries
    for task_id in ("sync_failed", "deferred_failed"):
        result.assert_state(task_id, "failed")
        assert result.tries(task_id) == 1, task_id
    assert "Processing failed: simulated failure" in result.output

    # a timeout is reported as a timeout, naming the request that may still finish
    for task_id in ("sync_timeout", "deferred_timeout"):
        result.assert_state(task_id, "failed")
        request_id = result.xcom(task_id, "request_id")
        assert f"ModelsLab request {request_id} was not ready after" in result.output
    assert "ModelsLab has no cancel API, so the job may still finish" in result.output

    # bad input and API validation messages: failed at once, with the message, no retry storm
    expected = {
        "empty_prompt": "prompt must be a non-empty string",
        "no_image": "init_image must be an image URL",
        "string_payload": "payload must be a dict",
        "unknown_endpoint": "Unknown ModelsLab video endpoint 'text2movie'",
        "api_prompt_required": "prompt is required",
        "api_model_not_found": "Model not found: no-such-model",
    }
    for task_id, message in expected.items():
        result.assert_state(task_id, "failed")
        assert result.tries(task_id) == 1, task_id
        assert message in result.output, message

    # one paid submission per generating task, none for bad input; 2 refused by API validation
    sent = submissions(sim, tag)
    accepted = [r for r in sent if r["job_id"] is not None]
    assert len(accepted) == 13, [r["body"] for r in accepted]
    assert len(sent) == 15
    assert_no_key_leak(result, ["sync_ok", "deferred_ok", "instant", "fusion_ok"])


# --------------------------------------------------------------------------- no paid work twice


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="reconnecting needs task_state_store (Airflow 3.3+)")
def test_new_tries_reconnect_to_the_submitted_request(sim: Simulator, airflow_home: Path) -> None:
    tag = f"t{uuid.uuid4().hex[:10]}"
    result = run_dag_test(
        airflow_home,
        TEST_DAGS / "operators_resume.py",
        "operators_resume",
        sim_url=sim.url,
        conf={"tag": tag},
    )

    # a worker dies mid-wait (sync), before deferring, or once the video was done: one job is paid
    for task_id, word in (
        ("crash_mid_wait", "one"),
        ("crash_before_defer", "two"),
        ("crash_when_done", "five"),
    ):
        result.assert_state(task_id, "success")
        assert result.tries(task_id) == 2, task_id
        jobs = jobs_for(sim, f"{word} {tag}")
        assert len(jobs) == 1, (task_id, jobs)
        assert result.xcom(task_id, "request_id") == jobs[0]
        assert result.xcom(task_id)[0].endswith(".mp4")
    assert "simulated worker death (poll)" in result.output
    assert "simulated worker death (defer)" in result.output
    assert "simulated worker death (result)" in result.output
    for word in ("one", "two"):
        assert (
            f"ModelsLab request {jobs_for(sim, f'{word} {tag}')[0]} from an earlier try is still"
            in result.output
        )
    assert (
        f"ModelsLab request {jobs_for(sim, f'five {tag}')[0]} finished during an earlier try" in result.output
    )

    # the timeout ends a try, the next try picks the same request up until it is done
    for mode in ("sync", "deferred"):
        task_id = f"timeout_then_retry_{mode}"
        result.assert_state(task_id, "success")
        assert result.tries(task_id) >= 2, task_id
        jobs = jobs_for(sim, f"four {mode} {tag}")
        assert len(jobs) == 1, (task_id, jobs)
        assert result.xcom(task_id, "request_id") == jobs[0]
        assert f"a retry of this task reconnects to request {jobs[0]}" in result.output
        assert f"ModelsLab request {jobs[0]} from an earlier try is still" in result.output

    # the request failed while nobody watched: the retry submits anew (and succeeds)
    result.assert_state("crash_then_job_failed", "success")
    jobs = jobs_for(sim, f"three {tag}")
    assert len(jobs) == 2, jobs
    assert sim.jobs()[jobs[0]]["status"] == "failed"
    assert result.xcom("crash_then_job_failed", "request_id") == jobs[1]
    assert "submitting anew" in result.output


# --------------------------------------------------------------------------- rate limits


class QueuePressure(threading.Thread):
    """Other work on the same account: keeps the queue full for 0.6 s, then lets it drain for 3 s.

    ``dags test`` runs one task at a time, so the 50 tasks alone never fill a queue of 5; this
    thread plays the rest of the account, and every task that submits during a busy spell must
    wait for a slot.
    """

    def __init__(self, sim: Simulator) -> None:
        super().__init__(daemon=True)
        self.client = ModelsLabClient(ClientSettings(api_key=CANARY_KEY, base_url=sim.url, max_retries=1))
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            busy_until = time.monotonic() + 0.6
            while time.monotonic() < busy_until and not self.stop.is_set():
                try:
                    self.client.submit("text2video", {"prompt": "other work [sim:duration=0.4]"})
                except ModelsLabError:
                    self.stop.wait(0.05)  # full: look again shortly
            self.stop.wait(3.0)


@pytest.fixture
def queue_limited_sim() -> Iterator[Simulator]:
    with Simulator(port=0, duration=0.3, queue_limit=5, retry_after=0.2) as simulator:
        pressure = QueuePressure(simulator)
        pressure.start()
        try:
            yield simulator
        finally:
            pressure.stop.set()
            pressure.join(timeout=10)


def test_fifty_mapped_deferrable_tasks_share_a_queue_of_five(
    queue_limited_sim: Simulator, airflow_home: Path
) -> None:
    sim = queue_limited_sim
    tag = f"t{uuid.uuid4().hex[:10]}"
    result = run_dag_test(
        airflow_home,
        TEST_DAGS / "operators_rate_limit.py",
        "operators_rate_limit",
        sim_url=sim.url,
        conf={"tag": tag},
    )

    for index in range(50):
        result.assert_state("generate", "success", map_index=index)
    result.assert_state("collect", "success")
    assert result.xcom("collect") == 50

    sent = submissions(sim, tag)
    refused = [r for r in sent if r["status"] == 429]
    accepted = [r for r in sent if r["status"] == 200 and r["job_id"] is not None]
    assert refused, "the queue limit was never hit: the test proves nothing"
    # each mapped task paid for exactly one video
    prompts = sorted(r["body"]["prompt"].split()[1] for r in accepted)
    assert prompts == sorted(str(i) for i in range(50))
    assert sim.config()["queue_limit"] == 5
    assert "the account's queue is full" in result.output
    assert "then resubmitting" in result.output
