"""A paid job's pure parts: the record of each submission, the recheck verdict, the try's deadline.

A job is what one try of a task pays for: one submission with one entry (a single video), or k
submissions of 3-20 entries (a batch task; 1-2 inputs go to the single endpoint). No I/O, no
clock, no Airflow: :mod:`modelslab_provider.jobs` runs the job in Airflow on top of these.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from modelslab_provider.client.batch.results import EntryResult
from modelslab_provider.client.core import Status, url_origin

#: what a recheck of a stored submission may answer (see :func:`verdict`)
RUNNING, DONE, FAILED, NOT_FOUND, SUPERSEDED = "running", "done", "failed", "not_found", "superseded"


def fingerprint(base_url: str, path: str, body: Mapping[str, Any]) -> str:
    """What a stored submission must match to be reused: server origin, endpoint or model, payload.

    Never the key: the origin is scheme, host and port only.
    """
    scheme, host, port = url_origin(base_url)
    canonical = json.dumps(
        {"origin": f"{scheme}://{host}:{port}", "path": path, "payload": dict(body)},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def records_from_store(value: Any) -> dict[int, dict[str, Any]]:
    """The stored submissions by number; an unreadable or foreign value holds none.

    Reads the record of every version: ``{"jobs": [...]}``, and a single request's record as
    ``SubmittedRequest.to_dict()`` stored it before the engine (a job of one submission).
    """
    if not isinstance(value, Mapping):
        return {}
    if isinstance(value.get("request_id"), str) and isinstance(value.get("fingerprint"), str):
        track = value.get("track_id")
        single = {"id": value["request_id"], "kind": "single", "size": 1, "number": 0, "offset": 0}
        value = {"jobs": [{**value, **single, "track_ids": [track] if track else []}]}
    jobs = value.get("jobs")
    out: dict[int, dict[str, Any]] = {}
    for job in jobs if isinstance(jobs, list) else []:
        if not isinstance(job, Mapping) or not job.get("id") or job.get("kind") not in ("batch", "single"):
            continue
        numbers = [job.get(k) for k in ("number", "offset", "size")]
        if all(isinstance(n, int) and not isinstance(n, bool) for n in numbers) and isinstance(
            job.get("fingerprint"), str
        ):
            out[job["number"]] = {**job, "track_ids": list(job.get("track_ids") or [])}
    return out


def verdict(entries: Sequence[EntryResult], size: int, accept_failures: bool) -> str:
    """What a new try does with a stored submission whose entries were just fetched.

    Running while any entry runs; done (reuse) when every entry succeeded, or when some did and
    failed inputs are acceptable (``allow_partial_failure``); failed (submit anew) otherwise, so
    a failed or refunded batch can be generated again by a clear.
    """
    if len(entries) < size or any(not e.is_terminal for e in entries):
        return RUNNING
    ok = sum(1 for e in entries if e.status is Status.DONE and e.urls)
    if ok == size or (ok and accept_failures):
        return DONE
    return FAILED


def seconds_of(value: Any) -> float | None:
    """A positive duration in seconds (number or timedelta), else None."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def try_deadline(started: float, now: float, timeout: Any, execution_timeout: Any) -> tuple[float, str]:
    """The one deadline of a try and the limit that sets it (named in the timeout message).

    The earlier of the try's start plus ``timeout`` and plus ``execution_timeout``: every queue
    wait, wait and fetch of the try is cut at it, deferred or not (Airflow 3 does not apply
    ``execution_timeout`` while a task is deferred).
    """
    start = min(started, now)
    budget = seconds_of(timeout) or 0.0
    deadline, limit = start + budget, f"timeout of {budget:.0f} s"
    ceiling = seconds_of(execution_timeout)
    if ceiling is not None and start + ceiling < deadline:
        deadline, limit = start + ceiling, f"execution_timeout of {ceiling:.0f} s"
    return deadline, limit


def paid_list(jobs: Sequence[Mapping[str, Any]]) -> str:
    """The submissions a try paid for, with the track ids to look for: for messages."""
    parts = []
    for job in jobs:
        tids = ", ".join(str(t) for t in job.get("track_ids") or [] if t) or "(none)"
        noun = "batch" if job.get("kind") == "batch" else "request"
        parts.append(f"{noun} {job['id']} (track_id {tids})")
    return "; ".join(parts)


def describe(kinds: Sequence[str], sizes: Sequence[int]) -> str:
    """A job's size as a user reads it: "1 video", "1 batch of 3 videos", "2 batches of 25 videos"."""
    videos = sum(sizes)
    batches = sum(1 for k in kinds if k == "batch")
    singles = len(kinds) - batches
    noun = "video" if videos == 1 else "videos"
    if not batches:
        return f"{videos} {noun}" if singles <= 1 else f"{videos} {noun} ({singles} single requests)"
    return f"{batches} {'batch' if batches == 1 else 'batches'} of {videos} {noun}"
