"""Benchmark 3, DAG-parse cost: what importing a DAG file that uses the provider adds.

Each variant is the same four-task DAG (three generation tasks and a wait): ``airflow.sdk`` base
classes only (the baseline), this provider's operators and sensor, and the HTTP provider's
``HttpOperator``/``HttpSensor``. Each is imported in a fresh ``python -X importtime -c "import
airflow.sdk; import <dag module>"`` subprocess (after one warm-up run, so ``.pyc`` files exist):
``airflow.sdk`` is loaded first, as in a dag-processor, so the figure (the DAG module's
cumulative import time, median of the runs) is the file's own cost: provider imports plus DAG
construction. The cost over the baseline is what the provider adds to each parse. Measured this
way rather than as whole-process time because Airflow's own ~1 s import varies by more than the
20 ms under test on a shared machine.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import PYTHON, REPO, Goal, Result, fmt, median, table

DAGS = Path(__file__).resolve().parent / "dags"
LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")
#: what a dag-processor has loaded before it parses a file; the marker splits importtime's output
PRELUDE = "import airflow.sdk, sys; sys.stderr.write('--dag--\\n'); "
HEAVY = ("requests", "aiohttp", "httpx", "asgiref", "multidict", "yarl")


def variants() -> dict[str, str]:
    """Label -> DAG module; the operators variant falls back to the sensor-only stand-in if needed."""
    ours = "parse_modelslab"
    if importlib.util.find_spec("modelslab_provider.operators.video") is None:
        ours = "parse_modelslab_sensor"
    return {
        "baseline (airflow.sdk only)": "parse_baseline",
        "this provider": ours,
        "HTTP provider": "parse_http",
    }


def import_once(module: str, home: str) -> tuple[float, dict[str, float]]:
    """(cumulative ms of ``module``, self ms of each module it loaded), ``airflow.sdk`` loaded first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([str(DAGS), str(REPO)]),
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        }
    )
    proc = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", PRELUDE + f"import {module}"],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"importing {module} failed:\n{proc.stderr[-3000:]}")
    cumulative = None
    modules: dict[str, float] = {}
    _, _, after = proc.stderr.partition("--dag--\n")
    for line in after.splitlines():
        match = LINE.match(line)
        if not match:
            continue
        name = match.group(4)
        modules[name] = int(match.group(1)) / 1000
        if name == module and not match.group(3).strip(" "):
            cumulative = int(match.group(2)) / 1000
    if cumulative is None:
        raise RuntimeError(f"no importtime line for {module}")
    return cumulative, modules


def run(quick: bool = False, repeats: int | None = None) -> Result:
    started = time.perf_counter()
    repeats = repeats or (1 if quick else 9)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-parse-") as home:
        labels = variants()
        for module in labels.values() if not quick else ():  # warm-up: .pyc files, airflow.cfg
            import_once(module, home)
        samples: dict[str, list[float]] = {label: [] for label in labels}
        loaded: dict[str, dict[str, float]] = {}
        for _ in range(repeats):  # interleaved, so load changes hit every variant alike
            for label, module in labels.items():
                ms, modules = import_once(module, home)
                samples[label].append(ms)
                loaded[label] = modules
    base_label = "baseline (airflow.sdk only)"
    base = median(samples[base_label])
    for label, module in labels.items():
        value = median(samples[label])
        rows.append(
            {
                "variant": label,
                "module": module,
                "median_ms": value,
                "min_ms": min(samples[label]),
                "max_ms": max(samples[label]),
                "over_baseline_ms": value - base,
                "http_libraries": sorted({m.split(".")[0] for m in loaded[label]} & set(HEAVY)),
                # modules the baseline does not load, by their own (self) import time, largest first
                "largest_additions": sorted(
                    ((name, ms) for name, ms in loaded[label].items() if name not in loaded[base_label]),
                    key=lambda item: -item[1],
                )[:8],
            }
        )
    ours = next(r for r in rows if r["variant"] == "this provider")
    http = next(r for r in rows if r["variant"] == "HTTP provider")
    stand_in = ours["module"] != "parse_modelslab"
    goals = [
        Goal(
            "DAG with our sensor and operators: <= 20 ms over the airflow.sdk baseline",
            f"{ours['over_baseline_ms']:+.1f} ms (HTTP provider: {http['over_baseline_ms']:+.1f} ms)"
            + (" [sensor only: operators not written yet]" if stand_in else ""),
            ours["over_baseline_ms"] <= 20,
        ),
        Goal(
            "importing our DAG pulls in no HTTP library",
            ", ".join(ours["http_libraries"]) or "none",
            not ours["http_libraries"],
        ),
    ]
    markdown = "\n\n".join(
        [
            "The same four-task DAG (text-to-video, image-to-video, a v7 video-fusion call, and a wait "
            "on the first) in three variants; `python -X importtime -c 'import airflow.sdk; import "
            f"<dag>'` in a fresh process, {repeats} runs each, interleaved, after a warm-up; cumulative "
            "import time of the DAG module with `airflow.sdk` already loaded (as in a dag-processor): "
            "provider imports plus DAG construction."
            + (
                " **The operators module did not exist at run time: the 'this provider' row uses the "
                "sensor with base-class stand-ins for the operators.**"
                if stand_in
                else ""
            ),
            table(
                ["variant", "median (ms)", "min-max (ms)", "over baseline (ms)", "HTTP libraries imported"],
                [
                    [
                        r["variant"],
                        fmt(r["median_ms"]),
                        f"{fmt(r['min_ms'])}-{fmt(r['max_ms'])}",
                        f"{r['over_baseline_ms']:+.1f}",
                        ", ".join(r["http_libraries"]) or "none",
                    ]
                    for r in rows
                ],
            ),
            "Largest additions over the baseline in the last run of 'this provider' (self import time): "
            + ", ".join(f"`{name}` {ms:.1f} ms" for name, ms in ours["largest_additions"])
            + ".",
        ]
    )
    return Result(
        name="parse",
        title="3. DAG-parse cost",
        rows=rows,
        goals=goals,
        markdown=markdown,
        commands=[
            f"python -X importtime -c 'import airflow.sdk; import {m}'  # PYTHONPATH=benchmarks/dags"
            for m in labels.values()
        ],
        seconds=time.perf_counter() - started,
    )
