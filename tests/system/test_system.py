"""The provider against the real ModelsLab API: one paid v6 text-to-video job, a sensor and a copy
that follow it for free, and (MODELSLAB_SYSTEM_BATCH=1) one Video Batch of 3.

Each test prints the wallet balance before and after, so a run shows what it cost on your plan.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from modelslab_provider.client.core import ClientSettings
from modelslab_provider.client.sync import ModelsLabClient
from tests.integration.airflow_run import DagRunResult, run_dag_test
from tests.system.conftest import KEY

DAGS = Path(__file__).resolve().parent / "dags"
TIMEOUT = 2400  # seconds for one `airflow dags test`: real queues can take many minutes


def balance() -> str:
    base_url = os.environ.get("MODELSLAB_BASE_URL") or "https://modelslab.com"
    client = ModelsLabClient(ClientSettings(api_key=KEY, base_url=base_url))
    try:
        return str(client.wallet_balance())
    finally:
        client.close()


def run(home: Path, conn: dict[str, str], name: str, conf: dict[str, Any] | None = None) -> DagRunResult:
    dag_id = f"system_modelslab_{name}"
    result = run_dag_test(
        home, DAGS / f"system_{name}.py", dag_id, sim_url=None, conf=conf, env=conn, timeout=TIMEOUT
    )
    assert result.returncode == 0, result.output[-6000:]
    assert KEY not in result.output  # the key never reaches a log line
    return result


def test_text_to_video_then_sensor_then_store(
    airflow_home: Path, real_connection: dict[str, str], tmp_path: Path
) -> None:
    """One paid video; the sensor and the copy follow its request id and URLs at no cost."""
    before = balance()
    generated = run(airflow_home, real_connection, "text_to_video")
    generated.assert_state("generate", "success")
    request_id = generated.xcom("generate", "request_id")
    urls = generated.xcom("generate")
    assert request_id
    assert urls
    assert all(u.startswith("https://") or os.environ.get("MODELSLAB_BASE_URL") for u in urls)

    sensed = run(airflow_home, real_connection, "sensor", {"request_id": request_id})
    sensed.assert_state("wait", "success")
    assert sensed.xcom("wait") == urls  # the same finished request, fetched again

    dest = tmp_path / "videos"
    stored = run(
        airflow_home,
        real_connection,
        "store",
        {"urls": urls, "request_id": request_id, "destination": f"file://{dest}/"},
    )
    stored.assert_state("store", "success")
    files = stored.xcom("store", "files")
    assert [f["uri"] for f in files] == stored.xcom("store")
    for f in files:
        assert Path(f["uri"].removeprefix("file://")).stat().st_size == f["bytes"] > 0
    print(f"\n[system] one v6 text2video job {request_id}: wallet balance {before} -> {balance()}")


@pytest.mark.skipif(
    os.environ.get("MODELSLAB_SYSTEM_BATCH") != "1", reason="MODELSLAB_SYSTEM_BATCH=1 runs the batch of 3"
)
def test_batch_of_three(airflow_home: Path, real_connection: dict[str, str]) -> None:
    before = balance()
    result = run(airflow_home, real_connection, "batch")
    result.assert_state("generate", "success")
    results = result.xcom("generate", "results")
    assert [r["index"] for r in results] == [0, 1, 2]
    assert all(r["status"] == "success" and r["urls"] for r in results)
    assert len(result.xcom("generate", "batch_ids")) == 1  # one paid submit for three videos
    print(f"\n[system] one batch of 3: wallet balance {before} -> {balance()}")
