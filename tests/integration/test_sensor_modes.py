"""VideoFetchSensor under ``airflow dags test`` in poke, reschedule and deferrable mode.

One DAG run per mode (``dags/sensor_modes.py``) covers a job whose first fetches answer 502 with
an HTML page before it succeeds, a failing job, and a never-finishing job watched with and without
``soft_fail``. The connection allows a single HTTP attempt, so each fault reaches the sensor itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelslab_provider.simulator import Simulator
from tests.integration.airflow_run import CANARY_KEY, TEST_DAGS, run_dag_test

DAG_FILE = TEST_DAGS / "sensor_modes.py"


def single_attempt_connection(sim_url: str) -> dict[str, str]:
    """The default connection, with client retries off so transient faults end a poke."""
    conn = {
        "conn_type": "modelslab",
        "password": CANARY_KEY,
        "host": sim_url,
        "extra": {"timeout": 5, "max_retries": 1},
    }
    return {"AIRFLOW_CONN_MODELSLAB_DEFAULT": json.dumps(conn)}


@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferrable"])
def test_sensor_outcomes(mode: str, sim: Simulator, airflow_home: Path) -> None:
    result = run_dag_test(
        airflow_home,
        DAG_FILE,
        f"sensor_modes_{mode}",
        sim_url=sim.url,
        env=single_attempt_connection(sim.url),
    )
    ids = result.xcom("submit")
    assert isinstance(ids, dict), result.output[-4000:]
    ok, failed, never = (str(ids[name]) for name in ("ok", "failed", "never"))

    # 502 + HTML on the first two fetches, then success: the URLs land in XCom for downstream tasks
    result.assert_state("wait_ok", "success")
    urls = result.xcom("wait_ok")
    assert isinstance(urls, list), urls
    assert len(urls) == 1, urls
    assert urls[0].endswith(".mp4"), urls
    result.assert_state("check_ok", "success")
    assert result.xcom("check_ok") == 1
    assert "HTTP 502 with an HTML error page" in result.output

    # a terminal failure fails at once with the API's own message (sent as ``messege``), no retry
    result.assert_state("wait_failed", "failed")
    assert result.tries("wait_failed") == 1
    assert "Processing failed: simulated failure" in result.output
    assert "AirflowFailException" in result.output

    # a job that never finishes: the sensor's timeout ends the wait; soft_fail turns it into a skip
    result.assert_state("wait_never", "failed")
    assert "AirflowSensorTimeout" in result.output
    result.assert_state("wait_never_soft", "skipped")

    stats = sim.stats()
    assert stats["fetches_per_job"][ok] >= 3  # two faults and the success
    for job in (ok, failed):
        assert job not in stats["fetches_after_terminal_per_job"], stats
    jobs = sim.jobs()
    assert jobs[never]["status"] == "processing", jobs[never]

    if mode == "deferrable":
        # the never-finishing jobs always defer (the others may finish by the first poke)
        assert result.output.count("running trigger in line") >= 2
        assert "Pausing task as DEFERRED" in result.output
    elif mode == "reschedule":
        assert "UP_FOR_RESCHEDULE" in result.output
    assert CANARY_KEY not in result.output
