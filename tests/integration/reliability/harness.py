"""Small helpers shared by the reliability tests: homes, connections, per-task logs, counts."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

from tests.integration.airflow_run import CANARY_KEY, REPO

#: the DAG files of these tests import ``tests.*``; the path also lets child processes find it
PYTHONPATH = str(REPO)


def clone_home(template: Path, dest: Path) -> Path:
    """A new AIRFLOW_HOME holding a copy of ``template``'s migrated metadata DB (no migration)."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "dags").mkdir(exist_ok=True)
    shutil.copy2(template / "airflow.db", dest / "airflow.db")
    cfg = template / "airflow.cfg"
    if cfg.exists():  # same Fernet key as the copied DB, but every path moved to the new home
        (dest / "airflow.cfg").write_text(cfg.read_text().replace(str(template), str(dest)))
    return dest


def connection_env(url: str, **extra: Any) -> dict[str, str]:
    """Env for the default connection on ``url`` with the canary key and the given extra."""
    conn = {"conn_type": "modelslab", "password": CANARY_KEY, "host": url, "extra": extra}
    return {"AIRFLOW_CONN_MODELSLAB_DEFAULT": json.dumps(conn), "PYTHONPATH": PYTHONPATH}


_START = re.compile(r"\[DAG TEST\] starting task_id=(\S+) map_index=(-?\d+)")
_END = re.compile(r"\[DAG TEST\] end task task_id=(\S+) map_index=(-?\d+)")


def task_logs(output: str) -> dict[str, str]:
    """Split ``airflow dags test`` output into each task's lines (tasks run one at a time there).

    A task that defers or reschedules has several segments; they are joined in order.
    """
    logs: dict[str, list[str]] = {}
    current: str | None = None
    for line in output.splitlines():
        start = _START.search(line)
        if start:
            current = start.group(1) if start.group(2) == "-1" else f"{start.group(1)}[{start.group(2)}]"
        if current is not None:
            logs.setdefault(current, []).append(line)
        if _END.search(line):
            current = None
    return {k: "\n".join(v) for k, v in logs.items()}


def fetches_by_job(entries: list[dict[str, Any]]) -> Counter[int]:
    """Fetch requests per job id in a simulator request log."""
    return Counter(
        e["job_id"] for e in entries if "/fetch/" in e.get("path", "") and e.get("job_id") is not None
    )


def submits_with(entries: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    """Submit requests whose prompt contains ``text``."""
    return [
        e
        for e in entries
        if "/fetch/" not in e.get("path", "")
        and e.get("path", "").startswith("/api/v")
        and isinstance(e.get("body"), dict)
        and text in str(e["body"].get("prompt", ""))
    ]
