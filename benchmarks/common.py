"""Shared pieces of the benchmarks: result records, markdown tables, the simulator process, machine facts."""

from __future__ import annotations

import math
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
#: the key every benchmark sends; the simulator accepts any key
BENCH_KEY = "sk-bench-0123456789abcdef"


@dataclass
class Goal:
    """One goal of the issue and whether this run met it."""

    text: str
    measured: str
    met: bool

    def row(self) -> list[str]:
        return [self.text, self.measured, "met" if self.met else "**missed**"]


@dataclass
class Result:
    """What one benchmark hands back: figures for tests, markdown for RESULTS.md, goals for the summary."""

    name: str
    title: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    markdown: str = ""
    commands: list[str] = field(default_factory=list)
    seconds: float = 0.0
    skipped: str | None = None


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sequence."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[rank - 1])


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(value: float, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:,.{digits}f}"


def ratio(ours: float, baseline: float) -> str:
    """``baseline / ours`` as "N.Nx" (how many times cheaper ours is)."""
    if not ours or not baseline or math.isnan(ours) or math.isnan(baseline):
        return "n/a"
    return f"{baseline / ours:.1f}x"


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for dist in (
        "apache-airflow",
        "apache-airflow-task-sdk",
        "apache-airflow-providers-http",
        "airflow-provider-modelslab",
        "aiohttp",
        "httpx",
    ):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            found[dist] = "not installed"
    return found


def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        text = Path("/proc/cpuinfo").read_text()
        match = re.search(r"model name\s*:\s*(.+)", text)
        if match:
            cpu = match.group(1).strip()
    except OSError:
        pass
    try:
        mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
        memory = f"{mem_kb / 1024 / 1024:.1f} GiB"
    except (OSError, AttributeError):
        memory = "unknown"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "os": f"{platform.system()} {platform.release()}",
        "cpu": f"{cpu}, {os.cpu_count()} logical cores",
        "memory": memory,
        "python": platform.python_version(),
        "load average at start": load,
    }


class SimulatorProcess:
    """``python -m modelslab_provider.simulator --port 0`` as a separate process (its CPU is not ours)."""

    def __init__(self, *args: str) -> None:
        self.args = list(args)
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> SimulatorProcess:
        cmd = [PYTHON, "-m", "modelslab_provider.simulator", "--port", "0", "--seed", "1", *self.args]
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            match = re.search(r"(http://\S+)", line)
            if match:
                self.url = match.group(1)
                return self
        self.__exit__()
        raise RuntimeError("the simulator did not start")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def admin(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call a ``/_sim/...`` admin route (GET, or POST with a JSON body)."""
        import json
        import urllib.request

        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method="GET" if data is None else "POST")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())


def modelslab_conn_env(url: str) -> str:
    """``AIRFLOW_CONN_MODELSLAB_DEFAULT`` for the simulator at ``url``."""
    import json

    return json.dumps(
        {"conn_type": "modelslab", "password": BENCH_KEY, "host": url, "extra": {"timeout": 30}}
    )
