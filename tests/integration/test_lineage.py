"""Hook-level lineage in a real ``airflow dags test`` run (issue 15, Lineage).

A test plugin registers Airflow's own ``HookLineageReader`` (so the collector is live, as with
the OpenLineage provider) and a listener that records, per successful task, what the collector
holds. The generating task must report the API endpoint (with the request id) as input and the
output URLs as outputs; the store task each source URL as input and each stored file as output.
The store task runs with the default ``allow_private_hosts=False``: the simulator is trusted only
as the ModelsLab connection's own origin.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from modelslab_provider.simulator import Simulator
from tests.integration.airflow_run import CANARY_KEY, TEST_DAGS, run_dag_test

PLUGINS = Path(__file__).resolve().parent / "lineage_plugins"
SAMPLE = resources.files("modelslab_provider.simulator").joinpath("data", "sample.mp4").read_bytes()


def test_generate_and_store_report_their_inputs_and_outputs(
    sim: Simulator, airflow_home: Path, tmp_path: Path
) -> None:
    capture = tmp_path / "lineage.jsonl"
    dest = tmp_path / "videos"
    result = run_dag_test(
        airflow_home,
        TEST_DAGS / "lineage_store.py",
        "lineage_store",
        sim_url=sim.url,
        conf={"destination": f"file://{dest}/"},
        env={"AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS), "LINEAGE_CAPTURE_FILE": str(capture)},
    )
    assert result.returncode == 0, result.output[-6000:]
    result.assert_state("generate", "success")
    result.assert_state("store", "success")
    assert CANARY_KEY not in result.output

    records: dict[str, dict[str, Any]] = {}
    for line in capture.read_text().splitlines():
        record = json.loads(line)
        records[record["task_id"]] = record
    assert set(records) == {"generate", "store"}, records

    request_id = result.xcom("generate", "request_id")
    output = result.xcom("generate")
    proxies = result.xcom("generate", "proxy_links")
    stored = result.xcom("store")
    assert output
    assert proxies
    assert stored

    generate = records["generate"]
    assert [(i["uri"], i["extra"]) for i in generate["inputs"]] == [
        (f"{sim.url}/api/v6/video/text2video", {"request_id": str(request_id)})
    ]
    assert [o["uri"] for o in generate["outputs"]] == output

    # the collector lives per process; ``dags test`` runs both tasks in one, so the store task's
    # record holds the generating task's entries too: compare what the store task added
    store = records["store"]
    added_in = [i for i in store["inputs"] if i not in generate["inputs"]]
    added_out = [o for o in store["outputs"] if o not in generate["outputs"]]
    assert [i["uri"] for i in added_in] == output + proxies
    assert [o["uri"] for o in added_out] == stored

    # 11.15a in a real run: the output and its proxy link end in the same file name, yet they
    # are two files, each holding the whole video
    assert len(stored) == len(set(stored)) == 2
    assert stored[0].rsplit("/", 1)[-1] != stored[1].rsplit("/", 1)[-1]
    for uri in stored:
        assert Path(uri.removeprefix("file://")).read_bytes() == SAMPLE
