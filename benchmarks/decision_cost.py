"""What the trigger itself does per poll, timed without a profiler: ``python benchmarks/decision_cost.py``.

Benchmark 1 measures a whole poll (aiohttp request, event loop, trigger); this times only the
trigger's own work on one answer, so the two can be compared: reading the HTTP body (key scrubbed,
JSON decoded), normalising it into a ``VideoResult``, the ``WaitTracker`` decision, and the progress
line's INFO-or-DEBUG choice with its arguments. The body is a real "processing" answer of the
simulator's fetch endpoint. Prints microseconds per poll for each step (best of 5 repeats).
"""

from __future__ import annotations

import json
import random
import time
import timeit
import urllib.request
from typing import Any

from benchmarks.common import BENCH_KEY, SimulatorProcess
from modelslab_provider.client import responses
from modelslab_provider.client.calls import BaseClient
from modelslab_provider.client.core import ClientSettings
from modelslab_provider.client.policy import WaitTracker
from modelslab_provider.triggers.base import ProgressLog
from modelslab_provider.triggers.video import VideoFetchTrigger

NUMBER = 20_000


def _post(url: str, body: dict[str, Any]) -> bytes:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return bytes(response.read())


def _per_call_us(fn: Any) -> float:
    return min(timeit.repeat(fn, number=NUMBER, repeat=5)) / NUMBER * 1e6


def main() -> None:
    with SimulatorProcess() as sim:
        submitted = json.loads(
            _post(f"{sim.url}/api/v6/video/text2video", {"key": BENCH_KEY, "prompt": "x [sim:duration=600]"})
        )
        body = _post(f"{sim.url}/api/v6/video/fetch/{submitted['id']}", {"key": BENCH_KEY})
    client = BaseClient(ClientSettings(api_key=BENCH_KEY, base_url=sim.url))
    request, parse = client.fetch_call(submitted["id"], "v6", submitted.get("fetch_result"))
    decoded = responses.read_answer(request, 200, body, None, BENCH_KEY)
    result = parse(decoded, 200)
    tracker = WaitTracker(request_id=str(submitted["id"]), started_at=time.time())
    progress = ProgressLog()

    def progress_line() -> None:
        VideoFetchTrigger._progress_is_info(progress, tracker, result, time.time())
        tracker.describe(result, time.time(), 5.0)

    steps = {
        "read the answer (scrub the key, decode JSON)": lambda: responses.read_answer(
            request, 200, body, None, BENCH_KEY
        ),
        "normalise it into a VideoResult": lambda: parse(decoded, 200),
        "WaitTracker decision": lambda: tracker.on_result(result, time.time(), random.random()),
        "progress line: INFO or DEBUG, and its arguments": progress_line,
    }
    print(f"answer: {body.decode()}")
    total = 0.0
    for name, fn in steps.items():
        cost = _per_call_us(fn)
        total += cost
        print(f"{name}: {cost:.1f} µs")
    print(f"the trigger's own work per poll: {total:.1f} µs")


if __name__ == "__main__":
    main()
