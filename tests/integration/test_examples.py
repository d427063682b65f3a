"""Every DAG in ``dags_examples/`` imports cleanly and runs to success against the simulator.

Each run passes a ``file://`` destination in a tmp folder through the DAG's params and a
``[sim:...]`` marker in the prompt so jobs take about a second; the test then checks the XComs
and the video files that landed, byte for byte against the simulator's sample video.
"""

from __future__ import annotations

import sqlite3
from importlib import resources
from pathlib import Path
from typing import Any

import requests

from modelslab_provider.simulator import Simulator
from tests.integration.airflow_run import CANARY_KEY, EXAMPLE_DAGS, DagRunResult, run_dag_test

EXPECTED_DAG_IDS = {
    "example_modelslab_text_to_video": "example_text_to_video.py",
    "example_modelslab_image_to_video_sensor": "example_image_to_video_sensor.py",
    "example_modelslab_batch_mapped": "example_batch_mapped.py",
    "example_modelslab_sensor_external_request": "example_sensor_external_request.py",
    "example_modelslab_v7_text_to_video": "example_v7_text_to_video.py",
    "example_modelslab_v7_image_list": "example_v7_image_list.py",
    "example_modelslab_video_batch": "example_video_batch.py",
    "example_modelslab_video_endpoint": "example_video_endpoint.py",
    "example_modelslab_hook_task": "example_hook_task.py",
}
SAMPLE = resources.files("modelslab_provider.simulator").joinpath("data", "sample.mp4").read_bytes()


def run_example(
    home: Path, sim: Simulator, dag_id: str, conf: dict[str, Any], env: dict[str, str] | None = None
) -> DagRunResult:
    result = run_dag_test(home, EXAMPLE_DAGS / EXPECTED_DAG_IDS[dag_id], dag_id, sim_url=sim.url, conf=conf)
    assert result.returncode == 0, result.output[-6000:]
    assert CANARY_KEY not in result.output  # the API key never reaches a log line
    return result


def assert_stored(uris: list[str], folder: Path, request_id: str) -> None:
    """The URIs name ``<request_id>_<i>.mp4`` files in ``folder`` holding the whole sample video."""
    assert uris == [f"file://{folder}/{request_id}_{i}.mp4" for i in range(len(uris))]
    assert uris
    for uri in uris:
        assert Path(uri.removeprefix("file://")).read_bytes() == SAMPLE
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".part")]


def reschedules(home: Path, dag_id: str, run_id: str | None, task_id: str) -> int:
    with sqlite3.connect(home / "airflow.db") as db:
        row = db.execute(
            "SELECT COUNT(*) FROM task_reschedule r JOIN task_instance t ON r.ti_id = t.id "
            "WHERE t.dag_id=? AND t.run_id=? AND t.task_id=?",
            (dag_id, run_id, task_id),
        ).fetchone()
    return int(row[0])


def test_examples_import_without_errors() -> None:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.3
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    bag = DagBag(dag_folder=str(EXAMPLE_DAGS))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == set(EXPECTED_DAG_IDS)
    for dag_id, file_name in EXPECTED_DAG_IDS.items():
        dag = bag.dags[dag_id]  # the parsed DAG (get_dag would look in the metadata DB)
        assert Path(dag.fileloc).name == file_name
        assert "destination" in dag.params  # every example lets the run choose where files go


def test_text_to_video(sim: Simulator, airflow_home: Path, tmp_path: Path) -> None:
    dest = tmp_path / "videos"
    dag_id = "example_modelslab_text_to_video"
    result = run_example(
        airflow_home,
        sim,
        dag_id,
        {"prompt": "a fox in the snow [sim:duration=1 eta=1]", "destination": f"file://{dest}/"},
    )
    result.assert_state("generate", "success")
    result.assert_state("store", "success")
    request_id = result.xcom("generate", "request_id")
    urls = result.xcom("generate")
    assert isinstance(request_id, str)
    assert urls
    assert all(u.startswith(sim.url) for u in urls)
    assert sim.jobs()[request_id]["scenario"]["duration"] == 1  # the run used the conf's prompt
    assert_stored(result.xcom("store"), dest, request_id)
    assert [f["bytes"] for f in result.xcom("store", "files")] == [len(SAMPLE)] * len(urls)


def test_image_to_video_with_rescheduling_sensor(sim: Simulator, airflow_home: Path, tmp_path: Path) -> None:
    dest = tmp_path / "i2v"
    dag_id = "example_modelslab_image_to_video_sensor"
    result = run_example(
        airflow_home,
        sim,
        dag_id,
        {
            "image_url": "https://images.example/cat.png",
            # ready at the second fetch: the first poke always reschedules, whatever the timing
            "prompt": "the cat blinks [sim:polls=2 eta=1]",
            "destination": f"file://{dest}/",
        },
    )
    for task_id in ("submit", "wait", "store"):
        result.assert_state(task_id, "success")
    request_id = result.xcom("submit", "request_id")
    # wait_for_completion=False: the return value is the request id, which the sensor took as is
    assert result.xcom("submit") == request_id
    assert sim.jobs()[request_id]["endpoint"] == "img2video"
    assert reschedules(airflow_home, dag_id, result.run_id, "wait") >= 1  # it gave its slot back
    urls = result.xcom("wait")
    assert urls
    assert all(u.startswith(sim.url) for u in urls)
    assert_stored(result.xcom("store"), dest, request_id)


def test_batch_mapped(sim: Simulator, airflow_home: Path, tmp_path: Path) -> None:
    dest = tmp_path / "batch"
    dag_id = "example_modelslab_batch_mapped"
    prompts = [f"shot {i} [sim:duration=1 eta=1]" for i in range(2)]
    result = run_example(airflow_home, sim, dag_id, {"prompts": prompts, "destination": f"file://{dest}/"})
    stored: list[str] = []
    for i in range(2):
        result.assert_state("generate", "success", map_index=i)
        result.assert_state("store", "success", map_index=i)
        request_id = result.xcom("generate", "request_id", map_index=i)
        uris = result.xcom("store", map_index=i)
        assert_stored(uris, dest, request_id)  # store[i] kept generate[i]'s video
        stored += uris
    assert len(set(stored)) == 2
    summary = result.xcom("summarise")
    assert summary == {"videos": 2, "bytes": 2 * len(SAMPLE), "uris": stored}


def test_sensor_on_a_request_submitted_outside_airflow(
    sim: Simulator, airflow_home: Path, tmp_path: Path
) -> None:
    body = {"key": "sk-someone-elses-script", "model_id": "wan2.2", "prompt": "a kite [sim:duration=2 eta=2]"}
    submitted = requests.post(f"{sim.url}/api/v6/video/text2video", json=body, timeout=10).json()
    request_id = str(submitted["id"])
    submits_before = sim.stats()["submits"]
    dest = tmp_path / "external"
    dag_id = "example_modelslab_sensor_external_request"
    result = run_example(
        airflow_home, sim, dag_id, {"request_id": request_id, "destination": f"file://{dest}/"}
    )
    result.assert_state("wait", "success")
    result.assert_state("store", "success")
    assert result.xcom("wait")
    assert_stored(result.xcom("store"), dest, request_id)
    stats = sim.stats()
    assert stats["submits"] == submits_before  # the DAG only fetched: no new (paid) job
    assert stats["fetches_per_job"][request_id] >= 1


def test_external_request_without_an_id_is_refused(sim: Simulator, airflow_home: Path) -> None:
    """Without a request id the run is refused up front instead of polling for "None"."""
    dag_id = "example_modelslab_sensor_external_request"
    unknown_before = sim.stats()["fetches_unknown"]
    result = run_dag_test(
        airflow_home, EXAMPLE_DAGS / EXPECTED_DAG_IDS[dag_id], dag_id, sim_url=sim.url, conf={}
    )
    assert result.returncode != 0
    assert "Invalid input for param request_id" in result.output
    assert sim.stats()["fetches_unknown"] == unknown_before


def _submitted_body(sim: Simulator, request_id: str, path: str) -> dict[str, Any]:
    [entry] = [r for r in sim.requests() if r["path"] == path and str(r.get("job_id")) == request_id]
    return dict(entry["body"])


def test_v7_text_to_video(sim: Simulator, airflow_home: Path, tmp_path: Path) -> None:
    dest = tmp_path / "v7"
    dag_id = "example_modelslab_v7_text_to_video"
    result = run_example(
        airflow_home,
        sim,
        dag_id,
        {"prompt": "a lighthouse [sim:duration=1 eta=1]", "duration": 6, "destination": f"file://{dest}/"},
    )
    result.assert_state("generate", "success")
    result.assert_state("store", "success")
    request_id = result.xcom("generate", "request_id")
    assert result.xcom("generate", "api_version") == "v7"
    body = _submitted_body(sim, request_id, "/api/v7/video-fusion/text-to-video")
    track_id = result.xcom("generate", "track_id")
    assert body == {
        "prompt": "a lighthouse [sim:duration=1 eta=1]",
        "model_id": "veo-3.1-fast",
        "duration": "6",
        "aspect_ratio": "16:9",
        "generate_audio": True,
        "track_id": track_id,
    }
    assert track_id.startswith("example_modelslab_v7_text_to_video.generate")
    assert_stored(result.xcom("store"), dest, request_id)


def test_v7_image_list(sim: Simulator, airflow_home: Path, tmp_path: Path) -> None:
    dest = tmp_path / "multi"
    dag_id = "example_modelslab_v7_image_list"
    images = [f"https://images.example/look-{i}.png" for i in range(3)]
    result = run_example(
        airflow_home,
        sim,
        dag_id,
        {"images": images, "prompt": "the look [sim:duration=1 eta=1]", "destination": f"file://{dest}/"},
    )
    for task_id in ("pick_images", "generate", "store"):
        result.assert_state(task_id, "success")
    request_id = result.xcom("generate", "request_id")
    body = _submitted_body(sim, request_id, "/api/v7/video-fusion/image-to-video")
    assert body["init_image"] == images  # the upstream task's list, sent as a list
    assert body["model_id"] == "kling-v1-6"
    assert body["duration"] == "5"
    assert "output_type" not in body
    assert_stored(result.xcom("store"), dest, request_id)


def test_video_batch(sim: Simulator, airflow_home: Path, tmp_path: Path) -> None:
    """Prompts from a task -> one batch (one submit, batch fetches only) -> mapped stores -> summary."""
    dest = tmp_path / "video_batch"
    dag_id = "example_modelslab_video_batch"
    prompts = [f"scene {i} [sim:duration={1 + i % 2} eta=1]" for i in range(4)]
    before = sim.stats()
    result = run_example(airflow_home, sim, dag_id, {"prompts": prompts, "destination": f"file://{dest}/"})
    result.assert_state("generate", "success")
    batch_ids = result.xcom("generate", "batch_ids")
    assert isinstance(batch_ids, list)
    assert len(batch_ids) == 1
    stats = sim.stats()
    assert stats["batch_submits"] - before["batch_submits"] == 1  # one paid call for four videos
    assert stats["submits"] == before["submits"]  # no single-video submit
    assert stats["fetches"] == before["fetches"]  # no per-video fetch: only the batch was polled
    batch = sim.batches()[batch_ids[0]]
    assert stats["batch_fetches_per_batch"][batch_ids[0]] >= 1
    results = result.xcom("generate", "results")
    assert [r["index"] for r in results] == [0, 1, 2, 3]
    # input order: entry i is the job made for prompt i (its scenario carries prompt i's duration)
    jobs = sim.jobs()
    for i, r in enumerate(results):
        assert r["status"] == "success"
        assert r["request_id"] == str(batch["job_ids"][i])
        assert r["track_id"] == batch["track_ids"][i]
        assert jobs[r["request_id"]]["scenario"]["duration"] == 1 + i % 2
    urls = result.xcom("generate")
    assert urls == [r["urls"] for r in results]
    stored: list[str] = []
    for i, r in enumerate(results):
        result.assert_state("store", "success", map_index=i)
        uris = result.xcom("store", map_index=i)
        assert_stored(uris, dest, r["request_id"])
        stored += uris
    summary = result.xcom("summarise")
    assert summary == {"videos": 4, "bytes": 4 * len(SAMPLE), "uris": stored, "refunded": 0}


def test_video_endpoint(sim: Simulator, airflow_home: Path, tmp_path: Path) -> None:
    """ModelsLabVideoOperator sends its payload unchanged to the endpoint it names."""
    dest = tmp_path / "ultra"
    dag_id = "example_modelslab_video_endpoint"
    result = run_example(
        airflow_home,
        sim,
        dag_id,
        {"prompt": "a lighthouse [sim:duration=1 eta=1]", "destination": f"file://{dest}/"},
    )
    result.assert_state("ultra", "success")
    result.assert_state("store", "success")
    request_id = result.xcom("ultra", "request_id")
    body = _submitted_body(sim, request_id, "/api/v6/video/text2video_ultra")
    assert {k: body[k] for k in ("prompt", "model_id", "resolution", "portrait")} == {
        "prompt": "a lighthouse [sim:duration=1 eta=1]",
        "model_id": "wan2.2",
        "resolution": 480,
        "portrait": False,
    }
    assert_stored(result.xcom("store"), dest, request_id)


def test_hook_task(sim: Simulator, airflow_home: Path, tmp_path: Path) -> None:
    """A @task with the hook's public API: one paid submit under the try's track_id, then stored."""
    dest = tmp_path / "hook"
    dag_id = "example_modelslab_hook_task"
    result = run_example(
        airflow_home,
        sim,
        dag_id,
        {"prompt": "a paper boat [sim:polls=2 eta=1]", "destination": f"file://{dest}/"},
    )
    result.assert_state("make_clip", "success")
    result.assert_state("store", "success")
    urls = result.xcom("make_clip")
    assert urls
    assert all(u.startswith(sim.url) for u in urls)
    submits = [r for r in sim.requests() if r["path"] == "/api/v6/video/text2video"]
    [submit] = [r for r in submits if r["body"].get("prompt") == "a paper boat [sim:polls=2 eta=1]"]
    assert str(submit["body"]["track_id"]).startswith(f"{dag_id}.make_clip.")
    stored = result.xcom("store")
    assert len(stored) == len(urls)
    for uri in stored:
        assert Path(uri.removeprefix("file://")).read_bytes() == SAMPLE
