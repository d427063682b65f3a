"""The simulator's Video Batch routes (stdlib only; the HTTP layer is in ``app.py``).

Follows https://docs.modelslab.com/video-api/video-batch and .../fetch-video-batch: 3 to 20
entries on one documented ``model_id``, ``defaults`` merged under each entry (the entry wins),
``track_id`` per entry or inherited from the top level, the whole batch validated before anything
is queued, each entry run as its own video job (so ``[sim:...]`` markers in an entry pick that
entry's duration, outcome and faults), and an entry unfinished ``batch_entry_limit`` seconds
(8 minutes by default, as documented) after submission failed with ``refunded: true``. An unknown
batch, or another account's, answers ``status: failed``, "Batch not found".

The docs do not say which top-level status a mixed outcome reports; the simulator answers
``success`` when at least one entry succeeded (clients must decide per entry anyway).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .scenario import MarkerError, find_markers, scenario_from
from .state import Reply, error_reply, key_digest

if TYPE_CHECKING:
    from .state import Job, SimState

BATCH_MODELS = frozenset(
    {"wan2.2", "ltx-2.3", "h3-minimax-t2v", "h3-minimax-r2v", "h3-minimax-start-end-frame"}
)
BATCH_MIN, BATCH_MAX = 3, 20
REFUND_MESSAGE = "Request did not finish within the batch time limit; it was failed and refunded"


@dataclass
class Batch:
    id: int
    owner: str
    job_ids: list[int]
    track_ids: list[str | None]
    submitted_at: float
    scenario_markers: list[str]
    polls: int = 0
    refunded: set[int] = field(default_factory=set)


def _validate(body: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
    """The whole batch's validation: an error message naming the entry, or the merged entries."""
    model = body.get("model_id")
    if not isinstance(model, str) or model not in BATCH_MODELS:
        return f"Model not supported for batch: {model!r}. Supported: {', '.join(sorted(BATCH_MODELS))}", []
    requests = body.get("requests")
    if not isinstance(requests, list) or not BATCH_MIN <= len(requests) <= BATCH_MAX:
        count = len(requests) if isinstance(requests, list) else "no"
        return f"requests must contain {BATCH_MIN} to {BATCH_MAX} entries, got {count}", []
    defaults = body.get("defaults") or {}
    if not isinstance(defaults, dict):
        return "defaults must be an object", []
    merged: list[dict[str, Any]] = []
    for i, entry in enumerate(requests):
        if not isinstance(entry, dict):
            return f"requests[{i}] must be an object", []
        item = {**defaults, **entry}
        if item.get("model_id") not in (None, model):
            return f"requests[{i}]: every request of a batch must use model_id {model}", []
        image, prompt = item.get("init_image"), item.get("prompt")
        if not (isinstance(image, str) and image.strip()) and not (
            isinstance(prompt, str) and prompt.strip()
        ):
            return f"requests[{i}]: prompt is required", []
        item["model_id"] = model
        if item.get("track_id") is None and body.get("track_id") is not None:
            item["track_id"] = body["track_id"]
        if body.get("webhook") and not item.get("webhook"):
            item["webhook"] = body["webhook"]
        merged.append(item)
    return None, merged


def submit_batch(state: SimState, body: dict[str, Any], key: Any, base_url: str) -> Reply:
    """``POST /api/v6/video/batch``: validate as a whole, then queue one job per entry."""
    state.counters["batch_submits"] += 1
    markers = find_markers(body)
    try:
        sc = scenario_from(state.config.scenario, markers)
    except MarkerError as exc:
        return error_reply(f"Invalid simulator marker: {exc}", 400)
    if sc.submit_fault:
        # counted per batch content: a repeat of the same batch meets the same fault budget
        marker_id = "batch:" + json.dumps(body.get("requests"), sort_keys=True, default=str)
        if state.submit_fault_counts[marker_id] < sc.submit_fault_times:
            state.submit_fault_counts[marker_id] += 1
            state.rejections["fault"] += 1
            return state.fault_reply(
                sc.submit_fault, sc, lambda: _accept(state, body, key, base_url, markers)
            )
    return _accept(state, body, key, base_url, markers)


def _accept(state: SimState, body: dict[str, Any], key: Any, base_url: str, markers: list[str]) -> Reply:
    auth = state.check_key(key, submit=True)
    if auth is not None:
        state.rejections["auth"] += 1
        return auth
    problem, merged = _validate(body)
    scenarios = []
    if problem is None:
        for i, item in enumerate(merged):
            try:
                scenarios.append(scenario_from(state.config.scenario, find_markers(item)))
            except MarkerError as exc:
                problem = f"requests[{i}]: invalid simulator marker: {exc}"
                break
    if problem is not None:
        state.rejections["batch_validation"] += 1
        return error_reply(f"Batch rejected, nothing was queued: {problem}", 200)
    owner = key_digest(key)
    batch_id = state.next_id
    state.next_id += 1
    jobs: list[Job] = []
    for item, sc in zip(merged, scenarios, strict=True):
        endpoint = "img2video_ultra" if item.get("init_image") else "text2video_ultra"
        jobs.append(state._create("v6", endpoint, item, key, owner, sc))
    batch = Batch(
        id=batch_id,
        owner=owner,
        job_ids=[job.id for job in jobs],
        track_ids=[item.get("track_id") for item in merged],
        submitted_at=state.clock(),
        scenario_markers=markers,
    )
    state.batches[batch_id] = batch
    state.counters["batches_created"] += 1
    answer = {
        "status": "processing",
        "id": batch_id,
        "batch_id": batch_id,
        "message": f"{len(jobs)} requests queued",
        "tip": "Fetch every video of the batch with the Fetch Video Batch endpoint",
        "fetch_result": f"{base_url}/api/v6/video/batch/fetch/{batch_id}",
        "requests": len(jobs),
    }
    return Reply(200, answer, job_id=batch_id)


def fetch_batch(state: SimState, id_text: str, key: Any, base_url: str) -> Reply:
    """``POST /api/v6/video/batch/fetch/{id}``: every entry's single-fetch body plus index and track_id."""
    auth = state.check_key(key, submit=False)
    if auth is not None:
        state.counters["fetches_rejected"] += 1
        return auth
    batch = state.batches.get(int(id_text)) if id_text.isdigit() else None
    if batch is None or batch.owner != key_digest(key):
        state.counters["batch_fetches_unknown"] += 1
        return _not_found()
    state.counters["batch_fetches"] += 1
    batch.polls += 1
    # a batch fetch reports every entry: it counts as a poll of each (``polls=N`` entries end at
    # the batch's Nth fetch, faulted or not, as a single job ends at its Nth fetch)
    for job_id in batch.job_ids:
        state.count_poll(state.jobs[job_id])
    sc = scenario_from(state.config.scenario, batch.scenario_markers)
    if sc.fault and batch.polls in sc.fault_on:
        state.counters["faults"] += 1
        if sc.fault == "notfound":  # the batch is gone: the documented batch answer, not the single one
            return _not_found()
        return state.fault_reply(sc.fault, sc, lambda: _answer(state, batch, base_url))
    return _answer(state, batch, base_url)


def _not_found() -> Reply:
    """An unknown batch id, or another account's (docs: fetch-video-batch, "Batch not found")."""
    return Reply(200, {"status": "failed", "message": "Batch not found"})


def _answer(state: SimState, batch: Batch, base_url: str) -> Reply:
    now = state.clock()
    sc = scenario_from(state.config.scenario, batch.scenario_markers)
    limit = sc.batch_limit if sc.batch_limit is not None else state.config.batch_entry_limit
    results: list[dict[str, Any]] = []
    output: list[str] = []
    running = succeeded = 0
    for index, job_id in enumerate(batch.job_ids):
        job = state.jobs[job_id]
        if job.outcome(now) is None and now >= job.submitted_at + limit:
            job.forced = "failed"
            job.ready_at = now
            batch.refunded.add(job_id)
            state.counters["batch_refunds"] += 1
        outcome = job.outcome(now)
        if outcome is None:
            running += 1
            body: dict[str, Any] = {"status": job.scenario.running_status, "id": job.public_id}
            body.update({"message": "try again later.", "output": "", "eta": job.eta})
        else:
            body = dict(state._terminal_body(job, base_url).body)
            if outcome == "success":
                succeeded += 1
                output.extend(body.get("output") or [])
            else:
                if job_id in batch.refunded:
                    body["message"] = REFUND_MESSAGE
                body["refunded"] = job_id in batch.refunded
        body["index"] = index
        body["track_id"] = batch.track_ids[index]
        results.append(body)
    total = len(batch.job_ids)
    status = "processing" if running else ("success" if succeeded else "failed")
    message = (
        f"{running} of {total} requests still processing. Try Again"
        if running
        else f"{succeeded} of {total} requests succeeded"
    )
    answer = {
        "status": status,
        "id": batch.id,
        "batch_id": batch.id,
        "message": message,
        "output": output,
        "results": results,
    }
    return Reply(200, answer, job_id=batch.id)


def batches_snapshot(state: SimState) -> dict[str, Any]:
    return {
        str(b.id): {
            "job_ids": b.job_ids,
            "track_ids": b.track_ids,
            "polls": b.polls,
            "refunded": sorted(b.refunded),
            "submitted_at": b.submitted_at,
        }
        for b in state.batches.values()
    }
