"""Run the benchmarks and write ``benchmarks/RESULTS.md``: ``python benchmarks/run.py [--quick]``.

``make bench`` runs the full set (about 25 minutes on 2 cores; the live-Airflow part is most
of it). ``--quick`` runs each benchmark once at a tiny size so the test suite can check they
still work (figures from a quick run mean nothing). ``--only scale,polling`` picks some.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REPO, Goal, Result, machine, table, versions

NAMES = ("scale", "polling", "parse", "slots", "reaction", "batch", "end")
DEFAULT_OUT = Path(__file__).resolve().parent / "RESULTS.md"


def groups() -> dict[str, Callable[[bool], list[Result]]]:
    """Group -> function(quick) giving its results; modules are imported only when run."""

    def scale(quick: bool) -> list[Result]:
        from benchmarks import triggerer_scale

        return [triggerer_scale.run(quick=quick)]

    def polling(quick: bool) -> list[Result]:
        from benchmarks import polling as module

        return [module.run(quick=quick)]

    def parse(quick: bool) -> list[Result]:
        from benchmarks import parse_cost

        return [parse_cost.run(quick=quick)]

    def live(quick: bool) -> list[Result]:
        from benchmarks import live_airflow

        return live_airflow.run(quick=quick)

    def batch(quick: bool) -> list[Result]:
        from benchmarks import batch_vs_single

        return [batch_vs_single.run(quick=quick)]

    def end(quick: bool) -> list[Result]:
        from benchmarks import trigger_end

        return [trigger_end.run(quick=quick)]

    return {"polling": polling, "parse": parse, "scale": scale, "live": live, "batch": batch, "end": end}


#: one live Airflow serves both the worker-slot and the reaction-time benchmark
GROUP_OF = {
    "scale": "scale",
    "polling": "polling",
    "parse": "parse",
    "slots": "live",
    "reaction": "live",
    "batch": "batch",
    "end": "end",
}


def run_all(names: Sequence[str], quick: bool) -> list[Result]:
    """Run what ``names`` need, cheapest first; a crash becomes a result carrying the traceback."""
    wanted = [g for g in groups() if g in {GROUP_OF[n] for n in names}]

    def one(group: str) -> list[Result]:
        started = time.perf_counter()
        print(f"== {group}{' (quick)' if quick else ''} ...", flush=True)
        try:
            produced = groups()[group](quick)
        except Exception:
            trace = traceback.format_exc()
            produced = [
                Result(name=n, title=n, skipped="crashed:\n\n```\n" + trace + "```")
                for n in names
                if GROUP_OF[n] == group
            ]
        for result in produced:
            result.seconds = result.seconds or time.perf_counter() - started
        return produced

    if quick and {"live", "batch", "end"} & set(wanted) and len(wanted) > 1:
        # quick mode only checks that everything still runs: the live Airflow (mostly waiting)
        # runs beside the others to keep the test suite's budget
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=1) as pool:
            # the two live-Airflow groups run one after the other, never side by side
            live_groups = [g for g in ("live", "batch", "end") if g in wanted]
            live = pool.submit(lambda: [r for g in live_groups for r in one(g)])
            produced = [r for g in wanted if g not in live_groups for r in one(g)] + live.result()
    else:
        produced = [r for g in wanted for r in one(g)]
    results: list[Result] = []
    for result in produced:
        if result.name not in names:
            continue
        print(f"   {result.title}: {result.seconds:.0f} s", flush=True)
        for goal in result.goals:
            print(f"   [{'met' if goal.met else 'MISSED'}] {goal.text}: {goal.measured}", flush=True)
        results.append(result)
    return sorted(results, key=lambda r: NAMES.index(r.name) if r.name in NAMES else len(NAMES))


def render(results: list[Result], quick: bool, argv: Sequence[str], seconds: float) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    info = machine()
    vers = versions()
    command = "python benchmarks/run.py" + ("".join(f" {a}" for a in argv) if argv else "")
    lines = [
        "# Benchmark results",
        "",
        f"Written by `{command}` (`make bench` runs it without arguments) on {now}, "
        f"in {seconds / 60:.1f} minutes."
        + (" **Quick mode: tiny sizes, figures are not meaningful.**" if quick else ""),
        "Every ratio compares with the Airflow HTTP provider measured in the same run.",
        "",
        "## Machine and versions",
        "",
        table(["", ""], [*info.items(), *vers.items(), ("platform", platform.platform())]),
        "",
        "The machine is shared: other work ran during the benchmarks (see the load average), so wall-clock",
        "figures (lag, reaction) carry noise; CPU-time figures are per process and less affected.",
        "",
        "## Goals",
        "",
        table(
            ["benchmark", "goal", "measured", ""],
            [[r.title, *g.row()] for r in results for g in r.goals]
            + [[r.title, "(not run)", r.skipped or "", "**skipped**"] for r in results if r.skipped],
        ),
    ]
    for r in results:
        lines += ["", f"## {r.title}", ""]
        if r.skipped:
            lines.append(f"Not run: {r.skipped}")
            continue
        lines.append(r.markdown)
        if r.commands:
            lines += ["", "Commands:", "", "```", *r.commands, "```"]
        lines += ["", f"Run time: {r.seconds:.0f} s."]
    return "\n".join(lines) + "\n"


def _keep_celery_section(out: Path, text: str) -> str:
    """Carry over the section ``benchmarks/celery_airflow.py`` wrote (it needs root and its own run)."""
    from benchmarks.celery_airflow import END_MARK, START_MARK, TRIG_END, TRIG_START

    old = out.read_text() if out.exists() else ""
    for start, end in ((START_MARK, END_MARK), (TRIG_START, TRIG_END)):
        if start in old and end in old:
            section = old[old.index(start) : old.index(end) + len(end)]
            text = text.rstrip("\n") + "\n\n" + section + "\n"
    return text


def main(argv: Sequence[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the benchmarks still run")
    parser.add_argument(
        "--only", default=",".join(NAMES), help=f"comma-separated subset of {','.join(NAMES)}"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help=f"markdown output (default {DEFAULT_OUT}; none with --quick)"
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    started = time.perf_counter()
    results = run_all(names, args.quick)
    out = args.out or (None if args.quick else DEFAULT_OUT)
    if out is not None:
        shown = list(argv if argv is not None else sys.argv[1:])
        text = render(results, args.quick, shown, time.perf_counter() - started)
        out.write_text(_keep_celery_section(out, text))
        print(f"wrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out}", flush=True)
    return results


if __name__ == "__main__":
    results = main()
    sys.exit(1 if any(r.skipped and r.skipped.startswith("crashed") for r in results) else 0)


__all__ = ["Goal", "main", "render", "run_all"]
