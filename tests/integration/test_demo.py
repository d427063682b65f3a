"""``make demo`` end to end: scripts/demo.py starts the simulator, runs the example DAG with
``airflow dags test`` on a throwaway AIRFLOW_HOME, prints the output URLs, and stops the simulator."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "scripts" / "demo.py"


def run_demo(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MODELSLAB_"))}
    return subprocess.run(
        [sys.executable, str(DEMO), *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def listening(url: str) -> bool:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, int(port))) == 0


def test_demo_runs_the_example_dag_against_the_simulator(tmp_path: Path) -> None:
    home = tmp_path / "airflow"
    proc = run_demo("--home", str(home))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]

    started = re.search(r"started the ModelsLab simulator at (http://127\.0\.0\.1:\d+)", output)
    assert started, output
    sim_url = started.group(1)
    assert "DAG run succeeded" in output
    # the generated video's URL (served by the simulator) is printed from XCom
    assert re.search(rf"^\s+generate: {re.escape(sim_url)}/files/[\w-]+\.mp4$", output, re.M), output
    assert "stopped the simulator" in output
    assert not listening(sim_url), "the simulator is still running after the demo"
    assert (home / "airflow.db").is_file()
    assert (tmp_path / "demo.log").is_file()


def test_demo_fails_clearly_without_its_dag_and_starts_nothing(tmp_path: Path) -> None:
    proc = run_demo(
        "--home", str(tmp_path / "airflow"), "--dag-file", str(tmp_path / "missing.py"), timeout=60
    )
    assert proc.returncode == 1
    assert "example DAG not found" in proc.stdout
    assert "started the ModelsLab simulator" not in proc.stdout
