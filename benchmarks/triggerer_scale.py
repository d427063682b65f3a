"""Benchmark 1, triggerer scale: N waiting triggers in one event loop, ours vs the HTTP provider's.

Each (N, arm) runs in a fresh worker process (``python -m benchmarks.triggerer_scale worker``)
against the simulator running as a separate process, so the worker's CPU time is the trigger
side only. The worker submits N jobs over HTTP (random durations via ``[sim:duration=..]``
markers), then starts N triggers the way Airflow's triggerer does (one asyncio task per trigger
on one loop, a greenback portal each, ``async for event in trigger.run()`` to the end, then
``cleanup()``), in batches of 500 as a triggerer picks them up. Figures:

* CPU per poll: the worker's user+system CPU from the first trigger start to the last event,
  divided by the fetches the simulator counted in that run;
* memory per waiting trigger: RSS growth from before the triggers start to when all of them wait,
  divided by N; a separate ``tracemalloc`` run gives the Python-heap bytes per trigger;
* event-loop lag: a ticker sleeps 50 ms in a loop and records the overshoot (p99, max);
* events: every trigger's generator is iterated to its end; each must yield exactly one event.

Arms, all polling on the same fixed schedule (every ``interval`` s; ETA-aware scheduling is
benchmark 2's subject, here the cost of one poll is):

* ``ours``: ``VideoFetchTrigger`` with ``poll_policy`` pinned to ``interval``; the key comes from
  the ``modelslab_default`` connection (``AIRFLOW_CONN_MODELSLAB_DEFAULT``), no DB;
* ``http_event``: the HTTP provider's ``HttpEventTrigger`` as shipped (POST with the key in a JSON
  body, ``response_check_path`` = :func:`benchmarks.http_check.video_ready`); it also polls once
  right at its start, before its first sleep;
* ``http_hook``: a minimal hand-written trigger on ``HttpAsyncHook`` (one ``hook.session()`` per
  poll, like the provider's own triggers), without ``HttpEventTrigger``'s per-poll module reload.

Log lines below WARNING are switched off in every arm (a real triggerer writes our per-poll INFO
line to the trigger's log; the HTTP triggers write none).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import resource
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from benchmarks.common import (
    BENCH_KEY,
    PYTHON,
    REPO,
    Goal,
    Result,
    SimulatorProcess,
    fmt,
    modelslab_conn_env,
    percentile,
    ratio,
    table,
)

ARMS = ("ours", "http_hook", "http_event")
#: the floor: the same schedule with nothing but a keep-alive aiohttp POST per poll (largest N only)
FLOOR = "bare"
ARM_LABELS = {
    "ours": "VideoFetchTrigger (this provider)",
    "http_hook": "HttpAsyncHook loop (hand-written trigger)",
    "http_event": "HttpEventTrigger (as shipped)",
    FLOOR: "bare aiohttp loop (floor: one shared session, no checks)",
}
#: keep-alive requests, 50 in flight, timed in every worker after its triggers finished
RAW_REQUESTS = 3000
#: ... in this many equal rounds, the median round counted
RAW_ROUNDS = 3
#: N -> (poll interval s, min duration s, max duration s): about 50-420 polls/s for the simulator
FULL = {100: (2.0, 10.0, 30.0), 1000: (5.0, 10.0, 30.0), 5000: (12.0, 20.0, 45.0)}
QUICK = {20: (0.4, 0.5, 1.2)}
BATCH = 500
TICK = 0.05
HTTP_CONN_ID = "modelslab_http"


# ----------------------------------------------------------------------------- worker side


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _sys_cpu() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _hook_trigger_class() -> type:
    from airflow.providers.http.hooks.http import HttpAsyncHook
    from airflow.triggers.base import BaseTrigger, TriggerEvent

    class HttpHookPollTrigger(BaseTrigger):
        """What a user would write with the HTTP provider: POST the fetch URL until a terminal status."""

        def __init__(self, request_id: str, key: str, interval: float) -> None:
            super().__init__()
            self.request_id = request_id
            self.key = key  # the HTTP provider has no way to put a connection password in a body
            self.interval = interval

        def serialize(self) -> tuple[str, dict[str, Any]]:
            return (
                "benchmarks.triggerer_scale.HttpHookPollTrigger",
                {"request_id": self.request_id, "key": self.key, "interval": self.interval},
            )

        async def run(self) -> AsyncIterator[TriggerEvent]:
            hook = HttpAsyncHook(method="POST", http_conn_id=HTTP_CONN_ID, auth_type=None)
            body = json.dumps({"key": self.key})
            while True:
                await asyncio.sleep(self.interval)
                async with hook.session() as http:
                    response = await http.run(
                        endpoint=f"api/v6/video/fetch/{self.request_id}",
                        data=body,
                        headers={"Content-Type": "application/json"},
                    )
                    payload = await response.json(content_type=None)
                status = payload.get("status")
                if status == "success" and payload.get("output"):
                    yield TriggerEvent({"status": "success", "request_id": self.request_id})
                    return
                if status in ("error", "failed", "cancelled", "expired"):
                    yield TriggerEvent({"status": "failed", "request_id": self.request_id})
                    return

    return HttpHookPollTrigger


def _bare_trigger_class() -> type:
    import aiohttp
    from airflow.triggers.base import BaseTrigger, TriggerEvent

    class BareAiohttpTrigger(BaseTrigger):
        """The floor on the same schedule: a keep-alive POST on one shared session, JSON decode, done.

        No connection lookup, no key scrubbing, no response checks, no URL or origin checks.
        """

        session: aiohttp.ClientSession | None = None

        def __init__(self, url: str, key: str, interval: float) -> None:
            super().__init__()
            self.url, self.key, self.interval = url, key, interval

        def serialize(self) -> tuple[str, dict[str, Any]]:
            kwargs = {"url": self.url, "interval": self.interval}
            return ("benchmarks.triggerer_scale.BareAiohttpTrigger", kwargs)

        async def run(self) -> AsyncIterator[TriggerEvent]:
            cls = type(self)
            if cls.session is None or cls.session.closed:
                cls.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
            body = json.dumps({"key": self.key}).encode()
            headers = {"Content-Type": "application/json"}
            while True:
                await asyncio.sleep(self.interval * (0.9 + 0.1 * random.random()))
                async with cls.session.post(self.url, data=body, headers=headers) as response:
                    payload = json.loads(await response.read())
                if payload.get("status") == "success" and payload.get("output"):
                    yield TriggerEvent({"status": "success"})
                    return

    return BareAiohttpTrigger


def _make_trigger(arm: str, job: dict[str, Any], interval: float) -> Any:
    if arm == FLOOR:
        return _bare_trigger_class()(job["fetch_url"], BENCH_KEY, interval)
    if arm == "ours":
        from modelslab_provider.triggers.video import VideoFetchTrigger

        return VideoFetchTrigger(
            request_id=job["id"],
            modelslab_conn_id="modelslab_default",
            api_version="v6",
            fetch_url=job["fetch_url"],
            started_at=job["submitted_at"],
            eta=None,
            deadline=None,
            # the nominal pace is ``interval``; the policy's own jitter may shorten a wait by 10 %
            poll_policy={"min_interval": interval * 0.9, "max_interval": interval, "interval": interval},
        )
    if arm == "http_event":
        from airflow.providers.http.triggers.http import HttpEventTrigger

        return HttpEventTrigger(
            response_check_path="benchmarks.http_check.video_ready",
            http_conn_id=HTTP_CONN_ID,
            method="POST",
            endpoint=f"api/v6/video/fetch/{job['id']}",
            headers={"Content-Type": "application/json"},
            data=json.dumps({"key": BENCH_KEY}),
            poll_interval=interval,
        )
    return _hook_trigger_class()(job["id"], BENCH_KEY, interval)


async def _run_like_triggerer(trigger: Any) -> list[Any]:
    """What ``TriggerRunner.run_trigger`` does around a trigger, minus the DB and the log routing."""
    import greenback

    await greenback.ensure_portal()
    events = []
    try:
        async for event in trigger.run():
            events.append(event.payload)
    finally:
        await trigger.cleanup()
    return events


async def _submit_all(url: str, n: int, low: float, high: float, seed: int) -> list[dict[str, Any]]:
    """Submit ``n`` jobs over HTTP (not measured) with durations drawn from U(low, high)."""
    from modelslab_provider.client.aio import AsyncModelsLabClient, close_shared_session
    from modelslab_provider.client.core import ClientSettings

    rng = random.Random(seed)
    client = AsyncModelsLabClient(ClientSettings(api_key=BENCH_KEY, base_url=url, timeout=60))
    gate = asyncio.Semaphore(50)

    async def one(i: int) -> dict[str, Any]:
        duration = round(rng.uniform(low, high), 2)
        async with gate:
            result = await client.submit("text2video", {"prompt": f"bench {i} [sim:duration={duration}]"})
        return {"id": result.request_id, "fetch_url": result.fetch_result, "submitted_at": time.time()}

    jobs = await asyncio.gather(*(one(i) for i in range(n)))
    await close_shared_session()
    return jobs


async def _ticker(lags: list[tuple[float, float, float]], stop: asyncio.Event) -> None:
    """(when, overshoot, busy overshoot) of each 50 ms sleep on the loop under test.

    The busy overshoot counts only the part the loop spent running other callbacks (the
    thread's CPU time during the sleep, capped at the overshoot): on a shared machine the
    process is also descheduled at times, which is no trigger's doing.
    """
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before, cpu_before = loop.time(), time.thread_time()
        await asyncio.sleep(TICK)
        after, cpu = loop.time(), time.thread_time() - cpu_before
        overshoot = max(after - before - TICK, 0.0)
        lags.append((after, overshoot, min(overshoot, cpu)))


async def _warm_up(arm: str, url: str) -> None:
    """One trigger end to end, so lazy imports, secrets backends and pools exist before measuring."""
    jobs = await _submit_all(url, 1, 0.1, 0.1, seed=0)
    await _run_like_triggerer(_make_trigger(arm, jobs[0], 0.2))


async def _close_pools(arm: str) -> None:
    if arm == FLOOR:
        session = _bare_trigger_class().session
        if session is not None:
            await session.close()
    if arm == "ours":
        from modelslab_provider.client.aio import close_shared_session

        await close_shared_session()


async def _start_in_batches(arm: str, jobs: list[dict[str, Any]], interval: float) -> list[asyncio.Task]:
    """Start the triggers ``BATCH`` at a time, 0.2 s apart, each batch as the triggerer creates them.

    Airflow's ``TriggerRunner.create_triggers`` (``airflow/jobs/triggerer_job_runner.py``) yields
    to the loop (``await asyncio.sleep(0)``) before it creates each trigger, so a batch picked up at
    once starts one trigger per loop iteration, interleaved with the running ones.
    """
    tasks = []
    for start in range(0, len(jobs), BATCH):
        for job in jobs[start : start + BATCH]:
            await asyncio.sleep(0)
            tasks.append(asyncio.create_task(_run_like_triggerer(_make_trigger(arm, job, interval))))
        await asyncio.sleep(0.2 if len(jobs) > BATCH else 0)
    return tasks


async def worker(args: argparse.Namespace) -> dict[str, Any]:
    import gc

    await _warm_up(args.arm, args.url)
    jobs = await _submit_all(args.url, args.n, args.low, args.high, seed=args.n)
    if args.tracemalloc:
        return await _traced(args, jobs)
    gc.collect()
    rss_before = _rss()
    samples: list[tuple[float, float, float]] = []
    stop = asyncio.Event()
    ticker = asyncio.create_task(_ticker(samples, stop))
    profiler = _profiler(args.profile)
    cpu_before, sys_before, wall_before = _cpu(), _sys_cpu(), time.perf_counter()
    tasks = await _start_in_batches(args.arm, jobs, args.interval)
    ramped = asyncio.get_running_loop().time()
    await asyncio.sleep(0.5)
    # set-up phase over: every trigger has started (connection lookup, client, first log line)
    cpu_setup = _cpu()
    polls_setup = await _fetches_so_far(args.url)
    rss_waiting = _rss()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    cpu_after, sys_after, wall_after = _cpu(), _sys_cpu(), time.perf_counter()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    fetches_end = await _fetches_so_far(args.url)
    await _close_pools(args.arm)
    raw = await _raw_cost(args.url, "aiohttp", RAW_REQUESTS if args.n >= 1000 else 200)
    stop.set()
    await ticker
    crashed = [repr(r) for r in results if isinstance(r, BaseException)]
    lags = [lag for _, lag, _ in samples]
    busy = [lag for _, _, lag in samples]
    steady = [lag for when, lag, _ in samples if when > ramped + 1.0]
    steady_busy = [lag for when, _, lag in samples if when > ramped + 1.0]
    events = [r for r in results if isinstance(r, list)]
    return {
        "n": args.n,
        "cpu_s": cpu_after - cpu_before,
        "setup_cpu_s": cpu_setup - cpu_before,
        "steady_cpu_s": cpu_after - cpu_setup,
        "fetches_during_setup": polls_setup,
        "fetches_at_end": fetches_end,
        "sys_cpu_s": sys_after - sys_before,
        "wall_s": wall_after - wall_before,
        "rss_before": rss_before,
        "rss_waiting": rss_waiting,
        "events_total": sum(len(e) for e in events),
        "triggers_one_event": sum(1 for e in events if len(e) == 1),
        "triggers_several_events": sum(1 for e in events if len(e) > 1),
        "success_events": sum(
            1 for e in events for p in e if isinstance(p, dict) and p.get("status") == "success"
        ),
        "crashed": crashed[:3],
        "lag_p50_ms": percentile(lags, 50) * 1000,
        "lag_p99_ms": percentile(lags, 99) * 1000,
        "lag_max_ms": max(lags) * 1000 if lags else float("nan"),
        # after the start-up ramp: polls only, no trigger start-ups
        "lag_p99_steady_ms": percentile(steady, 99) * 1000,
        "busy_lag_p99_ms": percentile(busy, 99) * 1000,
        "busy_lag_p99_steady_ms": percentile(steady_busy, 99) * 1000,
        "busy_lag_max_ms": max(busy) * 1000 if busy else float("nan"),
        "loadavg_1m": os.getloadavg()[0],
        "ticks": len(lags),
        "raw_request_ms": raw["cpu_s"] / raw["requests"] * 1000,
    }


def _profiler(path: str | None) -> Any:
    """A running cProfile profiler when ``path`` is given (a separate run: profiling slows the loop)."""
    if not path:
        return None
    import cProfile

    profiler = cProfile.Profile(time.process_time)  # CPU time: the shared machine preempts us
    profiler.enable()
    return profiler


async def _fetches_so_far(url: str) -> int:
    """Fetches the simulator has counted since its last reset (warm-up job included)."""
    import urllib.request

    def get() -> int:
        with urllib.request.urlopen(url + "/_sim/stats", timeout=60) as response:
            return int(json.loads(response.read())["fetches"])

    return await asyncio.to_thread(get)


async def _traced(args: argparse.Namespace, jobs: list[dict[str, Any]]) -> dict[str, Any]:
    """Python-heap bytes per waiting trigger: tracemalloc from before the first start to all waiting."""
    import gc
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tasks = await _start_in_batches(args.arm, jobs, args.interval)
    await asyncio.sleep(2.0 if args.arm == "ours" else 4.0)  # the HTTP triggers poll once at start
    gc.collect()
    waiting = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await _close_pools(args.arm)
    return {"n": args.n, "traced_bytes": waiting - before, "done_early": sum(t.done() for t in tasks)}


def worker_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--arm", choices=(*ARMS, FLOOR, "aiohttp", "httpx"), required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--low", type=float, default=1.0)
    parser.add_argument("--high", type=float, default=2.0)
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--profile", default=None, help="write cProfile stats of the measured phase here")
    args = parser.parse_args(argv)
    logging.disable(logging.INFO)
    os.environ["AIRFLOW_CONN_MODELSLAB_DEFAULT"] = modelslab_conn_env(args.url)
    os.environ[f"AIRFLOW_CONN_{HTTP_CONN_ID.upper()}"] = json.dumps({"conn_type": "http", "host": args.url})
    main = transport(args) if args.arm in ("aiohttp", "httpx") else worker(args)
    out = asyncio.run(main)
    print("RESULT " + json.dumps(out), flush=True)


# ----------------------------------------------------------------------------- transports


async def transport(args: argparse.Namespace) -> dict[str, Any]:
    """CPU per request of one async HTTP library: ``n`` fetch POSTs, 50 in flight, one pooled client."""
    return await _raw_cost(args.url, args.arm, args.n)


async def _raw_cost(base_url: str, lib: str, n: int) -> dict[str, Any]:
    """``n`` keep-alive fetch POSTs with ``lib`` on one pooled client, 50 in flight: CPU and wall time."""
    jobs = await _submit_all(base_url, 1, 3600, 3600, seed=1)
    url = f"{base_url}/api/v6/video/fetch/{jobs[0]['id']}"
    body = json.dumps({"key": BENCH_KEY}).encode()
    headers = {"Content-Type": "application/json"}
    gate = asyncio.Semaphore(50)
    if lib == "aiohttp":
        import aiohttp

        client: Any = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))

        async def post() -> None:
            async with client.post(url, data=body, headers=headers) as response:
                json.loads(await response.read())

    else:
        import httpx

        client = httpx.AsyncClient(limits=httpx.Limits(max_connections=64))

        async def post() -> None:
            response = await client.post(url, content=body, headers=headers)
            json.loads(response.content)

    async def one() -> None:
        async with gate:
            await post()

    await asyncio.gather(*(one() for _ in range(200)))  # warm-up
    # the median of RAW_ROUNDS rounds: a single round's CPU per request varied 2x between runs
    rounds = []
    for _ in range(RAW_ROUNDS):
        cpu_before, wall_before = _cpu(), time.perf_counter()
        await asyncio.gather(*(one() for _ in range(max(n // RAW_ROUNDS, 1))))
        rounds.append((_cpu() - cpu_before, time.perf_counter() - wall_before))
    await (client.close() if lib == "aiohttp" else client.aclose())
    cpu, wall = sorted(rounds)[len(rounds) // 2]
    return {"requests": max(n // RAW_ROUNDS, 1), "cpu_s": cpu, "wall_s": wall}


# ----------------------------------------------------------------------------- parent side


def _spawn(sim: SimulatorProcess, arm: str, n: int, params: tuple[float, float, float], *extra: str) -> dict:
    interval, low, high = params
    cmd = [
        PYTHON,
        "-m",
        "benchmarks.triggerer_scale",
        "worker",
        f"--arm={arm}",
        f"--url={sim.url}",
        f"--n={n}",
        f"--interval={interval}",
        f"--low={low}",
        f"--high={high}",
        *extra,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"  # structlog's level filter; see module docstring
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"worker {arm} N={n} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(lines[-1][len("RESULT ") :])


def measure(sim: SimulatorProcess, arm: str, n: int, params: tuple[float, float, float]) -> dict[str, Any]:
    sim.admin("/_sim/reset", {})
    out = _spawn(sim, arm, n, params)
    stats = sim.admin("/_sim/stats")
    # the warm-up job (the first after the reset) is counted too; the run's own fetches are the rest
    first_id = min(int(k) for k in stats["fetches_per_job"])
    warm_up = stats["fetches_per_job"][str(first_id)]
    # the worker's own keep-alive request timing (after the triggers) is not counted either
    polls = out["fetches_at_end"] - warm_up
    setup_polls = max(out["fetches_during_setup"] - warm_up, 0)
    steady_polls = polls - setup_polls
    out.update(
        setup_polls=setup_polls,
        setup_ms_per_trigger=out["setup_cpu_s"] / n * 1000,
        steady_ms_per_poll=out["steady_cpu_s"] / steady_polls * 1000 if steady_polls else float("nan"),
        arm=arm,
        interval=params[0],
        durations=f"U({params[1]:g}, {params[2]:g}) s",
        polls=polls,
        fetches_after_terminal=stats["fetches_after_terminal"],
        cpu_ms_per_poll=out["cpu_s"] / polls * 1000 if polls else float("nan"),
        kb_per_trigger=(out["rss_waiting"] - out["rss_before"]) / n / 1024,
        polls_per_trigger=polls / n,
    )
    return out


#: profile rows shown in RESULTS.md
PROFILE_TOP = 15


def profile(sim: SimulatorProcess, n: int, params: tuple[float, float, float]) -> dict[str, Any]:
    """cProfile of our arm at ``n`` (a separate worker run): the top functions by own time.

    cProfile slows every Python call, so its run is not one of the measured rows; its shares say
    where a poll's CPU goes, not how much there is.
    """
    import pstats
    import tempfile

    sim.admin("/_sim/reset", {})
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        path = os.path.join(tmp, "ours.prof")
        _spawn(sim, "ours", n, params, f"--profile={path}")
        stats = pstats.Stats(path)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for _, _, tt, _, _ in raw.values()) or 1.0
    entries = []
    for (filename, line, func), (_, calls, tottime, cumtime, _) in raw.items():
        entries.append(
            {
                "function": f"{_short_path(filename)}:{line}({func})",
                "calls": calls,
                "tottime_s": tottime,
                "cumtime_s": cumtime,
                "share": tottime / total,
            }
        )
    entries.sort(key=lambda e: e["tottime_s"], reverse=True)
    ours = sorted(
        (e for e in entries if e["function"].startswith("modelslab_provider/")),
        key=lambda e: e["cumtime_s"],
        reverse=True,
    )
    return {"n": n, "total_s": total, "top": entries[:PROFILE_TOP], "ours": ours[:10]}


def _profile_markdown(profiled: dict[str, Any]) -> str:
    """The profile section: top functions by own CPU time, and our functions by cumulative time."""

    def rows(entries: list[dict[str, Any]]) -> list[list[str]]:
        return [
            [
                f"`{e['function']}`",
                f"{e['calls']:,}",
                f"{e['tottime_s']:.3f}",
                f"{e['share'] * 100:.1f} %",
                f"{e['cumtime_s']:.3f}",
            ]
            for e in entries
        ]

    headers = ["function", "calls", "own CPU s", "share of profiled CPU", "cumulative CPU s"]
    return "\n\n".join(
        [
            f"Profile of our arm at N = {profiled['n']:,} (a separate worker run under cProfile with a "
            f"CPU-time clock, from the first trigger start to the last event: {profiled['total_s']:.1f} "
            "CPU s in all; cProfile slows every call, so shares matter, not seconds; calls of a "
            "coroutine count each resumption). Top functions by own time:",
            table(headers, rows(profiled["top"])),
            "This provider's functions by cumulative time:",
            table(headers, rows(profiled["ours"])),
        ]
    )


def _short_path(filename: str) -> str:
    """A profile entry's file, relative to site-packages or the repository."""
    for marker in ("site-packages/", str(REPO) + "/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    if filename.startswith("~"):
        return "builtin"
    return filename.rsplit("/lib/python", 1)[-1].split("/", 1)[-1] if "/lib/python" in filename else filename


def run(quick: bool = False, sizes: dict[int, tuple[float, float, float]] | None = None) -> Result:
    started = time.perf_counter()
    sizes = sizes or (QUICK if quick else FULL)
    rows: list[dict[str, Any]] = []
    traced: dict[str, float] = {}
    transports: dict[str, dict[str, Any]] = {}
    largest = max(sizes)
    with SimulatorProcess() as sim:
        for n, params in sizes.items():
            for arm in (*ARMS, FLOOR) if n == largest else ARMS:
                rows.append(measure(sim, arm, n, params))
        profiled = profile(sim, largest, sizes[largest])
        if not quick:
            for arm in ARMS:
                sim.admin("/_sim/reset", {})
                out = _spawn(sim, arm, largest, (sizes[largest][0], 600.0, 600.0), "--tracemalloc")
                traced[arm] = out["traced_bytes"] / largest / 1024
        for lib in ("aiohttp", "httpx"):
            sim.admin("/_sim/reset", {})
            transports[lib] = _spawn(sim, lib, 100 if quick else 3000, (1.0, 1.0, 1.0))
    return _result(rows, traced, transports, sizes, quick, time.perf_counter() - started, profiled)


def _result(
    rows: list[dict[str, Any]],
    traced: dict[str, float],
    transports: dict[str, dict[str, Any]],
    sizes: dict[int, tuple[float, float, float]],
    quick: bool,
    seconds: float,
    profiled: dict[str, Any] | None = None,
) -> Result:
    by = {(r["n"], r["arm"]): r for r in rows}
    largest = max(sizes)
    lines = []
    for r in rows:
        ours = by[(r["n"], "ours")]
        lines.append(
            [
                f"{r['n']:,}",
                ARM_LABELS[r["arm"]],
                f"{r['interval']:g} s, {r['durations']}",
                f"{r['polls']:,} ({r['polls_per_trigger']:.1f}/trigger)",
                f"{r['cpu_ms_per_poll']:.3f}",
                "1.0x" if r["arm"] == "ours" else ratio(ours["cpu_ms_per_poll"], r["cpu_ms_per_poll"]),
                f"{r['setup_ms_per_trigger']:.3f}",
                fmt(r["steady_ms_per_poll"], 3),
                f"{r['raw_request_ms']:.3f} ({ratio(r['raw_request_ms'], r['steady_ms_per_poll'])})",
                fmt(r["kb_per_trigger"]),
                f"{r['lag_p99_ms']:.0f} / {r['busy_lag_p99_ms']:.0f}",
                f"{r['lag_p99_steady_ms']:.0f} / {r['busy_lag_p99_steady_ms']:.0f}",
                f"{r['busy_lag_max_ms']:.0f}",
                f"{r['events_total']:,} / {r['triggers_one_event']:,}",
            ]
        )
    parts = [
        "Each row is a fresh worker process; the simulator runs as a separate process. CPU/poll = the "
        "worker's user+system CPU from the first trigger start to the last event / fetches counted by "
        "the simulator. RSS/trigger = RSS growth from before the first start to all triggers waiting, "
        "/ N. Lag = overshoot of a 50 ms ticker on the same loop; busy lag = the part of it the loop "
        "spent running callbacks (thread CPU time during the tick), which excludes the time the "
        "process was descheduled by other load on the shared machine. 'Waiting only' leaves out the "
        "start-up (triggers start in bursts of 500, as when a large mapped task defers at once) and the "
        "first second after it. Events = total events / triggers "
        "that yielded exactly one (both must equal N). Log lines below WARNING off in every arm. "
        "Set-up = the worker's CPU from the first trigger start until 0.5 s after the last burst "
        "started (trigger construction, connection lookup, client, first log line; polls made in that "
        "window, which only `HttpEventTrigger` makes, are in it too), / N. Steady = the CPU after "
        "that to the last event, / the polls after it. Raw request = in the same worker right after "
        "its triggers finished: keep-alive aiohttp POSTs of the same fetch on one pooled session, 50 in "
        f"flight ({RAW_REQUESTS:,} at N >= 1,000, in {RAW_ROUNDS} rounds: the median round's CPU / "
        "request). Triggers start as Airflow's triggerer starts them: it yields to the loop before "
        "creating each one (`TriggerRunner.create_triggers`). The bare aiohttp loop (largest N "
        "only) is the floor for this schedule: each trigger sleeps and POSTs on one shared session, "
        "with no lookup, checks or logging; one poll per wake-up costs more than a request in a batch "
        "of 50, because each poll takes its own event-loop iterations and system calls.",
        table(
            [
                "N",
                "arm",
                "schedule",
                "polls",
                "CPU ms / poll",
                "our CPU advantage",
                "set-up CPU ms / trigger",
                "steady CPU ms / poll",
                "raw request CPU ms (steady / raw)",
                "RSS KB / trigger",
                "lag p99 wall / busy (ms)",
                "waiting only: p99 wall / busy (ms)",
                "busy max (ms)",
                "events / single",
            ],
            lines,
        ),
    ]
    if traced:
        parts.append(
            f"tracemalloc cross-check at N = {largest:,} (Python heap growth until all wait, / N): "
            + ", ".join(f"{ARM_LABELS[a]} {v:.1f} KB" for a, v in traced.items())
            + "."
        )
    if transports:
        cost = {lib: t["cpu_s"] / t["requests"] * 1000 for lib, t in transports.items()}
        parts.append(
            "Async HTTP library for our client (one pooled client, 50 requests in flight, "
            f"{transports['aiohttp']['requests']:,} fetch POSTs each): "
            + ", ".join(f"{lib} {ms:.3f} CPU ms/request" for lib, ms in cost.items())
            + f". Choice: {'aiohttp' if cost['aiohttp'] <= cost['httpx'] else 'httpx'} "
            "(lower CPU per request)."
        )
    if profiled:
        parts.append(_profile_markdown(profiled))
    parts.append(
        "Reading the CPU figures: a poll of ours is one keep-alive request on the loop's shared, pooled "
        "aiohttp session plus the trigger's decision (key scrubbing, response normalisation, URL and "
        "origin checks, the wait tracker). Compare our steady-state row with the bare aiohttp loop on "
        "the same schedule: the difference is what the trigger adds per poll; the rest is aiohttp and "
        "asyncio waking one task per poll, which a batch of 50 requests in flight (the raw request "
        "column) amortises. Set-up is paid once per trigger: one connection lookup per conn id is "
        "shared by the triggers starting within 5 s of it. The HTTP provider's "
        "triggers open a new `aiohttp.ClientSession` and TCP connection per poll (`HttpEventTrigger` "
        "also re-imports its response-check module in a worker thread each time); that is the whole "
        "difference at low N. At high N the baselines also fall behind their own schedule (fewer polls "
        "per trigger than ours on the same schedule, loop lag of seconds), which is when a triggerer "
        "stops delivering events on time. Qualitative difference not in the figures: with the HTTP "
        "provider the key has to be in the trigger's kwargs (the `data` body), so it is stored in the "
        "`trigger` table; ours looks the connection up inside the triggerer."
    )
    goals = []
    ours_big = by[(largest, "ours")]
    goals.append(
        Goal(
            f"N = {largest:,}: steady-state CPU per poll <= 2x one raw keep-alive aiohttp request "
            "(same worker)",
            f"{ours_big['steady_ms_per_poll']:.3f} vs {ours_big['raw_request_ms']:.3f} ms "
            f"({ours_big['steady_ms_per_poll'] / ours_big['raw_request_ms']:.1f}x); set-up "
            f"{ours_big['setup_ms_per_trigger']:.3f} ms / trigger"
            + (
                "; bare aiohttp loop on the same schedule "
                f"{by[(largest, FLOOR)]['steady_ms_per_poll']:.3f} ms"
                if (largest, FLOOR) in by
                else ""
            ),
            ours_big["steady_ms_per_poll"] <= 2 * ours_big["raw_request_ms"],
        )
    )
    for arm in ("http_hook", "http_event"):
        b = by[(largest, arm)]
        goals.append(
            Goal(
                f"N = {largest:,}: >= 4x less CPU per poll than {ARM_LABELS[arm]}",
                f"{ours_big['cpu_ms_per_poll']:.3f} vs {b['cpu_ms_per_poll']:.3f} ms "
                f"({ratio(ours_big['cpu_ms_per_poll'], b['cpu_ms_per_poll'])}; steady state "
                f"{ratio(ours_big['steady_ms_per_poll'], b['steady_ms_per_poll'])})",
                b["cpu_ms_per_poll"] >= 4 * ours_big["cpu_ms_per_poll"],
            )
        )
    for arm in ("http_hook", "http_event"):
        for n in sizes:
            o, b = by[(n, "ours")], by[(n, arm)]
            goals.append(
                Goal(
                    f"N = {n:,}: >= 3x less CPU per poll than {ARM_LABELS[arm]}",
                    f"{o['cpu_ms_per_poll']:.3f} vs {b['cpu_ms_per_poll']:.3f} ms "
                    f"({ratio(o['cpu_ms_per_poll'], b['cpu_ms_per_poll'])})",
                    b["cpu_ms_per_poll"] >= 3 * o["cpu_ms_per_poll"],
                )
            )
    goals.append(
        Goal(
            f"N = {largest:,}: <= 50 KB per waiting trigger",
            f"RSS {ours_big['kb_per_trigger']:.1f} KB"
            + (f", tracemalloc {traced['ours']:.1f} KB" if "ours" in traced else ""),
            ours_big["kb_per_trigger"] <= 50,
        )
    )
    load = max(by[(n, "ours")]["loadavg_1m"] for n in sizes)
    steady = max(by[(n, "ours")]["busy_lag_p99_steady_ms"] for n in sizes)
    steady_wall = max(by[(n, "ours")]["lag_p99_steady_ms"] for n in sizes)
    whole = max(by[(n, "ours")]["busy_lag_p99_ms"] for n in sizes)
    whole_wall = max(by[(n, "ours")]["lag_p99_ms"] for n in sizes)
    goals.append(
        Goal(
            "event-loop lag p99 < 100 ms while the triggers wait (ours, every N; busy lag)",
            f"worst {steady:.0f} ms busy, {steady_wall:.0f} ms wall (1-min load average up to {load:.1f} "
            f"on {os.cpu_count()} cores)",
            steady < 100,
        )
    )
    goals.append(
        Goal(
            "event-loop lag p99 < 100 ms over the whole run, start-up bursts included (ours, every N)",
            f"worst {whole:.0f} ms busy, {whole_wall:.0f} ms wall",
            whole < 100,
        )
    )
    exact = all(
        by[(n, "ours")]["events_total"] == n == by[(n, "ours")]["triggers_one_event"]
        and by[(n, "ours")]["success_events"] == n
        for n in sizes
    )
    goals.append(Goal("events delivered = N, none twice (ours, every N)", "yes" if exact else "NO", exact))
    return Result(
        name="scale",
        title="1. Triggerer scale",
        rows=rows,
        goals=goals,
        markdown="\n\n".join(parts),
        commands=[f"python benchmarks/run.py --only scale{' --quick' if quick else ''}"],
        seconds=seconds,
    )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        worker_main(sys.argv[2:])
    else:
        print("usage: python -m benchmarks.triggerer_scale worker --arm=... (run.py drives this)")
