"""Benchmarks 4 and 5 again, on the production-shaped deployment, plus CPU per poll in a real triggerer.

``python benchmarks/celery_airflow.py`` (as root; about 15 minutes on 2 cores) starts the
deployment of the distributed tests (``tests/distributed/deployment.py``: PostgreSQL, Redis,
CeleryExecutor with two workers, two triggerers), runs the LocalExecutor benchmark's DAGs
(``benchmarks/dags/bench_live.py``) one after another and measures them with the same code
(``benchmarks.live_airflow.slot_seconds`` and ``reaction_times``), then holds N deferred
operators (``dist_failover`` of the distributed tests) in the two real ``airflow triggerer``
processes and reads their CPU time (supervisor and trigger-runner child, from /proc) against
the polls the simulator counted in the same window.

The figures go into ``benchmarks/RESULTS.md`` as the section between the
``<!-- celery-deployment -->`` markers, beside the LocalExecutor figures of the same file;
``benchmarks/run.py`` keeps that section when it rewrites the file.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REPO, fmt, machine, median, percentile, table

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
START_MARK = "<!-- celery-deployment:start -->"
END_MARK = "<!-- celery-deployment:end -->"
MODES = ("poke", "reschedule", "deferrable")
#: the real-triggerer runs (``--triggerer-only``), one entry per label and N; RESULTS.md's section
#: between these markers is rendered from all of them, so before/after runs sit side by side
TRIGGERER_RUNS = Path(__file__).resolve().parent / "real_triggerer_runs.json"
TRIG_START = "<!-- real-triggerer:start -->"
TRIG_END = "<!-- real-triggerer:end -->"
SCALE_GOAL = "N = 100: >= 3x less CPU per poll than HttpAsyncHook loop (hand-written trigger)"


class _SimAdmin:
    """``benchmarks.live_airflow.reaction_times`` reads the simulator through ``admin(path)``."""

    def __init__(self, sim: Any) -> None:
        self.sim = sim

    def admin(self, path: str) -> Any:
        return self.sim.get(path)


def triggerer_cpu_by_process(dep: Any) -> dict[str, float]:
    """CPU seconds so far of each triggerer process: ``triggerer1`` (supervisor), ``triggerer1 child``..."""
    from tests.distributed.deployment import _descendants, cpu_seconds

    found: dict[str, float] = {}
    for name, comp in dep.components.items():
        if name.startswith("triggerer") and comp.alive():
            for i, pid in enumerate([comp.pid, *_descendants(comp.pid)]):
                with contextlib.suppress(OSError):
                    label = name if i == 0 else f"{name} child {pid}"
                    found[label] = cpu_seconds(pid)
    return found


def triggerer_cpu(dep: Any) -> float:
    """CPU seconds of every triggerer process so far (each supervisor and its trigger-runner child)."""
    return sum(triggerer_cpu_by_process(dep).values())


def _short_frame(frame: str) -> str:
    """``func (/long/site-packages/pkg/mod.py:12)`` -> ``func (pkg/mod.py:12)``."""
    for marker in (
        "site-packages/",
        "/lib/python3.11/",
        "/lib/python3.12/",
        "/lib/python3.13/",
        str(REPO) + "/",
    ):
        if marker in frame:
            head, _, tail = frame.partition("(")
            return head + "(" + tail.split(marker, 1)[-1]
    return frame


def profile_triggerers(dep: Any, seconds: float, folder: Path) -> dict[str, Any] | None:
    """Sample every triggerer process (supervisor and child) with py-spy for ``seconds``.

    Returns the samples per process and the top functions by own samples and by inclusive samples
    (a function counted once per stack it is on), or None when py-spy is not installed.
    """
    import shutil
    import subprocess

    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        print("py-spy not found: pip install py-spy to profile the triggerers", file=sys.stderr)
        return None
    folder.mkdir(parents=True, exist_ok=True)
    from tests.distributed.deployment import _descendants

    procs = []
    for name, comp in dep.components.items():
        if name.startswith("triggerer") and comp.alive():
            # one py-spy per process: `--subprocesses` on the supervisor missed its forked child
            for i, pid in enumerate([comp.pid, *_descendants(comp.pid)]):
                label = name if i == 0 else f"{name} child"
                out = folder / f"{name}-{pid}.txt"
                cmd = [exe, "record", "--pid", str(pid), "--function", "--rate", "100", "--nonblocking"]
                cmd += ["--duration", str(int(seconds)), "--format", "raw", "--output", str(out)]
                popen = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                procs.append((label, out, popen))
    stacks: list[tuple[list[str], int]] = []
    for label, out, proc in procs:
        proc.wait(timeout=seconds + 120)
        for line in out.read_text().splitlines() if out.exists() else []:
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                stacks.append(
                    ([f"process {label}", *(_short_frame(f) for f in stack.split(";"))], int(count))
                )
    return summarise_profile(stacks, seconds)


def summarise_profile(stacks: list[tuple[list[str], int]], seconds: float, top: int = 12) -> dict[str, Any]:
    """Per process: samples, the top functions by own samples, and the triggerer's and this
    provider's functions by inclusive samples (counted once per stack they are on)."""
    per: dict[str, dict[str, Any]] = {}
    for frames, count in stacks:
        label = frames[0].removeprefix("process ") if frames and frames[0].startswith("process ") else "?"
        entry = per.setdefault(label, {"samples": 0, "own": {}, "inclusive": {}})
        entry["samples"] += count
        calls = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not calls:
            continue
        entry["own"][calls[-1]] = entry["own"].get(calls[-1], 0) + count
        for frame in set(calls):
            entry["inclusive"][frame] = entry["inclusive"].get(frame, 0) + count
    wanted = (
        "modelslab_provider/",
        "triggerer_job_runner.py",
        "supervisor.py",
        "models/trigger.py",
        "structlog",
    )
    total = sum(e["samples"] for e in per.values())

    def ranked(counts: dict[str, int], keep: Any = None) -> list[tuple[str, int, float]]:
        rows = sorted(((f, c) for f, c in counts.items() if keep is None or keep(f)), key=lambda r: -r[1])
        return [(f, c, c / total * 100 if total else 0.0) for f, c in rows[:top]]

    return {
        "seconds": seconds,
        "samples": total,
        "per_process": {k: e["samples"] for k, e in per.items()},
        "processes": {
            k: {
                "own": ranked(e["own"]),
                "inclusive": ranked(e["inclusive"], lambda f: any(w in f for w in wanted)),
            }
            for k, e in sorted(per.items(), key=lambda kv: -kv[1]["samples"])
        },
    }


def measure(quick: bool = False, held: int = 100, window: float = 60.0) -> dict[str, Any]:
    from benchmarks.live_airflow import FULL, QUICK, reaction_times, slot_seconds
    from tests.distributed.deployment import Deployment

    size = QUICK if quick else FULL
    dags = [REPO / "benchmarks" / "dags" / "bench_live.py", REPO / "tests/distributed/dags/dist_scenarios.py"]
    slots_per_worker = (size.videos + 3) // 2 + 1  # every poke-mode sensor gets a slot, as with LocalExecutor
    root = Path(tempfile.mkdtemp(prefix="modelslab-bench-celery-"))
    begun = time.monotonic()
    out: dict[str, Any] = {"size": size, "machine": machine(), "held": held}
    dep = Deployment.start_all(
        root,
        dags=dags,
        worker_concurrency=slots_per_worker,
        parallelism=2 * slots_per_worker + 4,
        extra_env={
            "BENCH_VIDEOS": str(size.videos),
            "BENCH_DURATION": f"{size.duration:g}",
            "BENCH_POKE": f"{size.poke:g}",
            "BENCH_REACT_MIN": f"{size.react_min:g}",
            "BENCH_REACT_MAX": f"{size.react_max:g}",
            "DIST_FAILOVER_N": str(held),
            "DIST_SPREAD_N": "1",
            "DIST_DB_N": "1",
        },
    )
    try:
        out["describe"] = dep.describe()
        dep.wait_for_dags([f"bench_slots_{m}" for m in MODES] + ["bench_reaction", "dist_failover"])
        out["setup"] = time.monotonic() - begun
        limit = 900 + max(size.duration, size.react_max) * 4
        runs: dict[str, str] = {}
        for dag_id in [*(f"bench_slots_{m}" for m in MODES), "bench_reaction"]:
            runs.update(dep.trigger_dags([dag_id]))
            state = dep.wait_for_run(dag_id, runs[dag_id], limit)
            if state != "success":
                raise RuntimeError(f"{dag_id} ended {state}\n{dep.logs_tail()}")
        out["slots"] = {
            m: slot_seconds(dep, dep.home, f"bench_slots_{m}", runs[f"bench_slots_{m}"], m) for m in MODES
        }
        out["reaction"] = reaction_times(dep, _SimAdmin(dep.sim), runs["bench_reaction"], size)
        out["triggerer"] = _triggerer_cpu_per_poll(dep, held, 15.0 if quick else window)
    finally:
        dep.stop()
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    out["seconds"] = time.monotonic() - begun
    return out


def _triggerer_cpu_per_poll(
    dep: Any,
    held: int,
    window: float,
    dag_id: str = "dist_failover",
    prefix: str = "failover op",
    profile: float = 0.0,
) -> dict[str, Any]:
    """Hold ``held`` deferred operators in the two triggerers; their CPU per poll over ``window`` s.

    The triggerers' idle CPU (heartbeats, trigger-table queries) over a window of the same length
    with no trigger is measured first and reported apart, so the per-poll figure is also given
    net of it. With ``profile`` > 0, py-spy then samples the triggerer processes for that many
    seconds (after the CPU window, so its own cost is not in the figure).
    """
    idle0 = triggerer_cpu(dep)
    time.sleep(window)
    idle = triggerer_cpu(dep) - idle0
    run_id = dep.trigger_dags([dag_id])[dag_id]
    deferring = time.monotonic()

    def waiting() -> bool:
        rows = dep.query(
            "SELECT count(*) FROM task_instance ti JOIN trigger t ON ti.trigger_id = t.id "
            "WHERE ti.dag_id=%s AND ti.run_id=%s AND t.triggerer_id IS NOT NULL",
            dag_id,
            run_id,
        )
        return bool(rows[0][0] == held)

    dep.wait_until(f"{held} operators deferred", waiting, 3600, 2.0)
    deferred_in = time.monotonic() - deferring
    time.sleep(
        10 if held <= 100 else 30
    )  # past the start-up burst: the first polls, the resumed supervisors' lookups
    by0, fetch0, t0 = triggerer_cpu_by_process(dep), dep.sim.stats()["fetches"], time.monotonic()
    time.sleep(window)
    by1, fetch1, t1 = triggerer_cpu_by_process(dep), dep.sim.stats()["fetches"], time.monotonic()
    per_process = {k: v - by0.get(k, 0.0) for k, v in by1.items()}
    cpu0, cpu1 = sum(by0.values()), sum(by1.values())
    profiled = profile_triggerers(dep, profile, dep.root / "profile") if profile > 0 else None
    for prompt, ids in dep.submits().items():
        if prompt.startswith(prefix):
            for job_id in ids:
                dep.sim.complete(job_id)
    dep.wait_for_run(dag_id, run_id, 3600)
    polls = fetch1 - fetch0
    return {
        "held": held,
        "triggerers": sum(1 for name in dep.components if name.startswith("triggerer")),
        "deferred_in": deferred_in,
        "per_process": per_process,
        "profile": profiled,
        "window": t1 - t0,
        "polls": polls,
        "cpu": cpu1 - cpu0,
        "cpu_ms_per_poll": (cpu1 - cpu0) / polls * 1000 if polls else float("nan"),
        "idle_cpu": idle,
        "net_ms_per_poll": (
            (cpu1 - cpu0 - idle * (t1 - t0) / window) / polls * 1000 if polls else float("nan")
        ),
    }


def measure_triggerer(
    held: int, triggerers: int, poll: float, max_poll: float, window: float, profile: float
) -> dict[str, Any]:
    """Only the real-triggerer CPU figure: ``held`` deferred operators in ``triggerers`` triggerers."""
    from tests.distributed.deployment import Deployment

    root = Path(tempfile.mkdtemp(prefix="modelslab-bench-triggerer-"))
    begun = time.monotonic()
    out: dict[str, Any] = {"machine": machine(), "poll": (poll, max_poll)}
    dep = Deployment.start_all(
        root,
        dags=[REPO / "benchmarks" / "dags" / "bench_triggerer.py"],
        triggerers=triggerers,
        triggerer_capacity=max(1000, held),
        worker_concurrency=16,
        parallelism=36,
        extra_env={
            "BENCH_HELD_N": str(held),
            "BENCH_HELD_POLL": f"{poll:g}",
            "BENCH_HELD_MAX_POLL": f"{max_poll:g}",
        },
    )
    try:
        out["describe"] = dep.describe()
        dep.wait_for_dags(["bench_triggerer_held"])
        out["setup"] = time.monotonic() - begun
        out["triggerer"] = _triggerer_cpu_per_poll(
            dep, held, window, dag_id="bench_triggerer_held", prefix="held op", profile=profile
        )
    finally:
        dep.stop()
        import shutil

        shutil.rmtree(root, ignore_errors=True)
    out["seconds"] = time.monotonic() - begun
    return out


def _local_figures() -> dict[str, str]:
    """The LocalExecutor goal rows of RESULTS.md (benchmarks 4 and 5), to quote beside ours."""
    found = {}
    text = RESULTS.read_text() if RESULTS.exists() else ""
    for key, title in (
        ("slots", "4. Worker slots"),
        ("reaction", "5. Reaction time"),
        ("scale", "1. Triggerer scale"),
    ):
        for line in text.splitlines():
            cells = [c.strip() for c in line.strip("|").split("|")]
            wanted = key != "scale" or cells[1:2] == [SCALE_GOAL]
            if len(cells) >= 3 and cells[0].startswith(title) and wanted:
                found[key] = cells[2]
                break
    return found


def render(out: dict[str, Any], command: str) -> str:
    size = out["size"]
    slots = out["slots"]
    poke = slots["poke"]["slot_seconds"]
    react = [r["reaction"] for r in out["reaction"]]
    detect = [r["detection"] for r in out["reaction"]]
    overhead = [r["airflow"] for r in out["reaction"]]
    trig = out["triggerer"]
    local = _local_figures()
    rows = [
        [
            m,
            slots[m]["task_instances"],
            slots[m]["retries"],
            slots[m]["worker_runs"],
            fmt(slots[m]["slot_seconds"]),
            f"{slots[m]['slot_seconds'] / poke * 100:.1f} %" if poke else "n/a",
        ]
        for m in MODES
    ]
    lines = [
        START_MARK,
        "## Celery deployment: PostgreSQL, CeleryExecutor on Redis, two triggerers (issue 14)",
        "",
        f"Written by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in "
        f"{out['seconds'] / 60:.1f} minutes (Airflow start-up {out['setup']:.0f} s); load average at "
        f"start {out['machine']['load average at start']}. The deployment is the distributed tests' "
        "(`tests/distributed/deployment.py`):",
        "",
        "```",
        out["describe"],
        "```",
        "",
        f"### Worker slots ({size.videos} videos of {size.duration:g} s, poke interval {size.poke:g} s)",
        "",
        "Same DAGs and same counting as benchmark 4 (each try's own log, first to last line per worker "
        "run), with the tasks on two Celery workers.",
        "",
        table(["mode", "task instances", "retries", "worker runs", "worker-slot s", "vs poke"], rows),
        "",
        f"LocalExecutor (benchmark 4 above): {local.get('slots', 'n/a')}. A deferrable worker run took "
        f"{slots['deferrable']['slot_seconds'] / max(slots['deferrable']['worker_runs'], 1):.1f} s here "
        "(first to last log line), several times the LocalExecutor's on the same machine; that run is "
        "mostly Airflow's own start-up of the task (DAG parse, execution-API calls through one API "
        "server process), which suffers most from the machine's load. The cause was not isolated "
        "further.",
        "",
        f"### Reaction time ({size.videos} deferrable operators, {size.react_min:g}-{size.react_max:g} s)",
        "",
        table(
            ["figure", "median (s)", "p95 (s)"],
            [
                ["reaction (ready -> downstream start)", fmt(median(react)), fmt(percentile(react, 95))],
                ["  detection (ready -> successful fetch)", fmt(median(detect)), fmt(percentile(detect, 95))],
                [
                    "  Airflow (that fetch -> downstream start)",
                    fmt(median(overhead)),
                    fmt(percentile(overhead, 95)),
                ],
            ],
        ),
        "",
        f"LocalExecutor (benchmark 5 above): {local.get('reaction', 'n/a')}.",
        "",
        f"### CPU per poll inside the real `airflow triggerer` processes (N = {trig['held']})",
        "",
        f"{trig['held']} deferred `ModelsLabTextToVideoOperator`s (poll every 2-3 s) held in the two "
        f"triggerers; over {trig['window']:.0f} s the triggerer processes (supervisor + trigger-runner "
        f"child, both triggerers) used {trig['cpu']:.2f} CPU s for {trig['polls']:,} polls counted by the "
        f"simulator: **{trig['cpu_ms_per_poll']:.2f} CPU ms per poll**, heartbeats, connection lookups "
        "through the supervisor and log shipping included. With no trigger at all the two triggerers "
        f"used {trig['idle_cpu']:.2f} CPU s over a window of the same length (heartbeats, trigger-table "
        f"queries); net of that, **{trig['net_ms_per_poll']:.2f} CPU ms per poll**. Bare event loop, "
        f"N = 100 (benchmark 1 above): {local.get('scale', 'n/a')}. The machine's load (see above) "
        "inflates wall-clock figures here (worker-slot seconds, reaction) much more than CPU times.",
        "",
        END_MARK,
    ]
    return "\n".join(lines)


def render_triggerer_runs(runs: list[dict[str, Any]]) -> str:
    """The real-triggerer section: one row per run, then each run's profile."""
    rows = []
    for r in runs:
        t = r["triggerer"]
        split = ", ".join(
            f"{k.split(' child')[0]}{' child' if ' child' in k else ''} {v:.1f}"
            for k, v in sorted(t["per_process"].items())
        )
        rows.append(
            [
                r["label"],
                f"{t['held']:,}",
                t["triggerers"],
                f"{r['poll'][0]:g}-{r['poll'][1]:g} s",
                f"{t['polls']:,} in {t['window']:.0f} s",
                f"{t['cpu']:.1f} ({split})",
                f"{t['idle_cpu']:.1f}",
                f"**{t['cpu_ms_per_poll']:.2f}**",
                f"**{t['net_ms_per_poll']:.2f}**",
                f"{t['deferred_in'] / 60:.1f} min",
                r["load"],
                f"`{r['command']}`",
            ]
        )
    lines = [
        TRIG_START,
        "## CPU per poll inside a real `airflow triggerer` (issue 16 item 5, issue 14)",
        "",
        "Written by `python benchmarks/celery_airflow.py --triggerer-only` (as root): the distributed "
        "tests' deployment (PostgreSQL, CeleryExecutor on Redis, `tests/distributed/deployment.py`) "
        "with only `benchmarks/dags/bench_triggerer.py`: N mapped deferrable "
        "`ModelsLabTextToVideoOperator`s whose jobs stay running, held in real `airflow triggerer` "
        "processes. CPU = user + system time of every triggerer process (supervisor and trigger-runner "
        "child, from /proc) over the window, which starts 30 s after the last operator deferred (10 s "
        "at N <= 100); polls = fetches the simulator counted in the same window. Idle = the same "
        "triggerers' CPU over a window of the same length before any trigger existed (heartbeats, "
        "trigger-table queries); net = (CPU - idle) / polls. Connection lookups go through the "
        "triggerer's supervisor and every log line through its log channel. Runs are kept in "
        "`benchmarks/real_triggerer_runs.json`; a new run replaces the one with the same label and N.",
        "",
        table(
            [
                "run",
                "N",
                "triggerers",
                "poll pace",
                "polls in window",
                "triggerer CPU s (per process)",
                "idle CPU s",
                "CPU ms / poll",
                "net ms / poll",
                "deferring took",
                "load average at start",
                "command",
            ],
            rows,
        ),
        "",
        "Reading the runs of 2026-12-01: with a progress line at INFO on every poll, the triggerer's "
        "supervisor (`TriggerRunnerSupervisor.run_once`: `load_triggers` and `clean_unused`, trigger-"
        "table queries) was 80 % of the profile and 9.3 of 11.1 CPU s: Airflow runs that loop once per "
        "message from the trigger runner, and every log line is one. The trigger's own code "
        "(`VideoFetchTrigger.run` and below) was 3 %. Logging the progress line at INFO only on a "
        "change and at most once a minute (DEBUG in between; README, *Waiting modes*) cut the "
        "supervisor to 0.9 CPU s at N = 100. At N = 1,000 the once-a-minute lines (about 17 a second) "
        "still keep the supervisor at half the samples; the trigger runner child's 0.61 ms per poll "
        "is the bare loop's cost (benchmark 1) plus Airflow's runner.",
    ]
    for r in runs:
        prof = r["triggerer"].get("profile")
        if not prof:
            continue
        per = ", ".join(f"{k}: {v:,}" for k, v in sorted(prof["per_process"].items()))
        lines += [
            "",
            f"Profile of run '{r['label']}', N = {r['triggerer']['held']:,} (py-spy, 100 Hz, "
            f"{prof['seconds']:.0f} s after the CPU window, on-CPU samples only, functions aggregated by "
            f"their first line; {prof['samples']:,} samples: {per}; shares are of all samples).",
        ]
        for proc, tops in prof.get("processes", {}).items():
            lines += [
                "",
                f"{proc}: top functions by own samples | on the stack (triggerer, supervisor, structlog, "
                "this provider)",
                "",
                table(
                    ["own: function", "samples", "share", "on stack: function", "samples", "share"],
                    [
                        [
                            *([f"`{o[0]}`", f"{o[1]:,}", f"{o[2]:.1f} %"] if o else ["", "", ""]),
                            *([f"`{i[0]}`", f"{i[1]:,}", f"{i[2]:.1f} %"] if i else ["", "", ""]),
                        ]
                        for o, i in itertools.zip_longest(tops["own"], tops["inclusive"])
                    ],
                ),
            ]
    lines += ["", TRIG_END]
    return "\n".join(lines)


def record_triggerer_run(out: dict[str, Any], label: str, command: str) -> str:
    """Add this run to the JSON file (replacing one with the same label and N); the new section."""
    import json

    runs = json.loads(TRIGGERER_RUNS.read_text()) if TRIGGERER_RUNS.exists() else []
    entry = {
        "label": label,
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load": out["machine"]["load average at start"],
        "poll": list(out["poll"]),
        "triggerer": out["triggerer"],
    }
    runs = [r for r in runs if (r["label"], r["triggerer"]["held"]) != (label, out["triggerer"]["held"])]
    runs.append(entry)
    TRIGGERER_RUNS.write_text(json.dumps(runs, indent=1) + "\n")
    return render_triggerer_runs(runs)


def write_section(section: str, path: Path = RESULTS, start: str = START_MARK, end: str = END_MARK) -> None:
    """Put ``section`` into RESULTS.md in place of the previous one (or at the end)."""
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the benchmark runs")
    parser.add_argument(
        "--held", type=int, default=100, help="deferred operators for the CPU-per-poll figure"
    )
    parser.add_argument(
        "--triggerer-only",
        action="store_true",
        help="only the real-triggerer CPU figure (no worker-slot or reaction DAGs); own section",
    )
    parser.add_argument(
        "--triggerers", type=int, default=1, help="with --triggerer-only: triggerer processes"
    )
    parser.add_argument("--poll", type=float, default=5.0, help="with --triggerer-only: poll_interval (s)")
    parser.add_argument(
        "--max-poll", type=float, default=10.0, help="with --triggerer-only: max_poll_interval"
    )
    parser.add_argument("--window", type=float, default=120.0, help="with --triggerer-only: CPU window (s)")
    parser.add_argument("--profile", type=float, default=0.0, help="py-spy the triggerers for this many s")
    parser.add_argument(
        "--label", default="current", help="with --triggerer-only: the run's name in the table"
    )
    args = parser.parse_args(argv)
    if args.triggerer_only:
        out = measure_triggerer(
            args.held, args.triggerers, args.poll, args.max_poll, args.window, args.profile
        )
        command = (
            f"python benchmarks/celery_airflow.py --triggerer-only --held {args.held} "
            f"--triggerers {args.triggerers} --poll {args.poll:g} --max-poll {args.max_poll:g} "
            f"--window {args.window:g}" + (f" --profile {args.profile:g}" if args.profile else "")
        )
        section = record_triggerer_run(out, args.label, command)
        print(section)
        write_section(section, start=TRIG_START, end=TRIG_END)
        return 0
    out = measure(quick=args.quick, held=args.held)
    command = "python benchmarks/celery_airflow.py" + (" --quick" if args.quick else "")
    if args.held != 100:
        command += f" --held {args.held}"
    section = render(out, command)
    print(section)
    if not args.quick:
        write_section(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
