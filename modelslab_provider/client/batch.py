"""The pure core of ModelsLab's Video Batch API: request building, chunking, fetch normalisation.

No I/O, no clock, no Airflow import. The sync and async transports, the hook, the trigger and the
batch operator all go through these functions, so a quirk is handled once.

What ModelsLab documents (https://docs.modelslab.com/video-api/video-batch and
https://docs.modelslab.com/video-api/fetch-video-batch, read 2026-11-30):

* ``POST /api/v6/video/batch`` takes ``model_id``, ``requests`` (3 to 20 entries, all on one
  ``model_id``), optional ``defaults`` ("merged under every entry; a value set on an entry wins"),
  ``track_id`` ("an entry's own track_id is used ...; entries without one inherit the top-level
  value") and ``webhook`` ("called once per request as it finishes"). Supported models:
  ``wan2.2``, ``ltx-2.3``, ``h3-minimax-t2v``, ``h3-minimax-r2v``, ``h3-minimax-start-end-frame``.
  An entry with ``init_image`` takes the image-to-video path, the others text-to-video. The batch
  is validated as a whole before anything is queued. Each entry costs half the matching single
  endpoint (Text to Video Ultra or Image to Video Ultra); an entry not finished 8 minutes after
  submission is failed and refunded.
* ``POST /api/v6/video/batch/fetch/{id}`` answers ``status`` (``processing`` while any entry runs,
  ``success`` once all succeeded, ``failed`` once all failed), ``id``/``batch_id``, ``output``
  (finished videos in request order) and ``results``: one single-fetch body per entry plus
  ``index`` and ``track_id``; a failed entry carries ``refunded: true`` when its charge was
  reversed. An unknown batch id answers ``status: failed``, "Batch not found".

The docs do not say what a mixed outcome reports at the top level, so completion is decided from
the per-entry ``results``, never from the top-level status alone.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelslab_provider.client import core, responses
from modelslab_provider.client.core import SECRET_FIELDS, ApiRequest, ClientSettings, Status, VideoResult
from modelslab_provider.client.errors import (
    ModelsLabConfigError,
    ModelsLabError,
    ModelsLabNotFoundError,
    ModelsLabRequestError,
    ModelsLabTimeoutError,
    ModelsLabTransientError,
)
from modelslab_provider.client.policy import Action, Decision, PollPolicy, RetryPolicy

BATCH_PATH = "api/v6/video/batch"
BATCH_FETCH_PATH = "api/v6/video/batch/fetch/{id}"

#: entries per batch, inclusive (video-batch page: "A batch takes 3 to 20 requests")
BATCH_MIN = 3
BATCH_MAX = 20

#: the documented ``model_id`` values (video-batch page, Note)
BATCH_MODELS = ("wan2.2", "ltx-2.3", "h3-minimax-t2v", "h3-minimax-r2v", "h3-minimax-start-end-frame")

#: the single endpoints (text, image) a model may use when there are too few inputs for a batch.
#: The batch page prices entries against Text/Image to Video Ultra, whose pages name only
#: ``wan2.2`` and ``ltx-2.3``; the ``h3-minimax-*`` models have no documented single endpoint.
SINGLE_ENDPOINTS: dict[str, tuple[str, str]] = {
    "wan2.2": ("text2video_ultra", "img2video_ultra"),
    "ltx-2.3": ("text2video_ultra", "img2video_ultra"),
}

#: price of one batch entry relative to the matching single endpoint (video-batch page)
BATCH_PRICE_FACTOR = 0.5
#: minutes after submission when ModelsLab fails and refunds an unfinished entry (video-batch page)
BATCH_ENTRY_LIMIT_MINUTES = 8

_BATCH_NOT_FOUND_RE = re.compile(r"batch not found", re.I)
_TRACK_ID_MAX = 128


# --------------------------------------------------------------------------- chunking


def batch_sizes(count: int) -> list[int]:
    """Balanced batch sizes for ``count`` inputs: 21 -> [11, 10], 45 -> [15, 15, 15].

    ``count`` must be 0 (no batch) or at least :data:`BATCH_MIN`; sizes differ by at most one and
    each lies in [BATCH_MIN, BATCH_MAX] (more than 20 inputs give batches of more than 10).
    """
    if count == 0:
        return []
    if count < BATCH_MIN:
        raise ModelsLabConfigError(
            f"A ModelsLab batch needs at least {BATCH_MIN} entries, got {count}; send fewer inputs to "
            "a single-video endpoint instead."
        )
    batches = math.ceil(count / BATCH_MAX)
    base, extra = divmod(count, batches)
    return [base + 1 if i < extra else base for i in range(batches)]


def chunk(items: Sequence[Any], sizes: Sequence[int]) -> list[list[Any]]:
    """``items`` split into consecutive slices of ``sizes`` (which must add up to ``len(items)``)."""
    if sum(sizes) != len(items):
        raise ValueError(f"sizes {list(sizes)} do not add up to {len(items)} items")
    out: list[list[Any]] = []
    start = 0
    for size in sizes:
        out.append(list(items[start : start + size]))
        start += size
    return out


# --------------------------------------------------------------------------- request building


def derive_track_id(seed: str, index: int) -> str:
    """A deterministic track id for input ``index`` of a task (``seed`` names the task instance).

    The same task instance and input always get the same id, so a user can find an entry in the
    ModelsLab dashboard or a webhook log after an ambiguous failure.
    """
    digest = hashlib.sha256(seed.encode()).hexdigest()[:16]
    return f"airflow-{digest}-{index}"


def _check_no_secrets(value: Mapping[str, Any], where: str) -> None:
    secret = sorted(str(k) for k in value if str(k).strip().lower() in SECRET_FIELDS)
    if secret:
        raise ModelsLabConfigError(
            f"{where} must not contain {secret}: the API key comes from the Airflow connection only."
        )


def check_model(model_id: Any) -> str:
    if not isinstance(model_id, str) or model_id.strip() not in BATCH_MODELS:
        raise ModelsLabConfigError(
            f"model_id {model_id!r} is not supported by the ModelsLab Video Batch API; use one of "
            f"{', '.join(BATCH_MODELS)}."
        )
    return model_id.strip()


def entries_from(prompts: Any = None, requests: Any = None) -> list[dict[str, Any]]:
    """The inputs as entry dicts: ``prompts`` (strings) or ``requests`` (dicts), exactly one given."""
    if (prompts is None) == (requests is None):
        raise ModelsLabConfigError(
            "Pass exactly one of prompts (a list of strings) or requests (a list of dicts)."
        )
    name, value = ("prompts", prompts) if prompts is not None else ("requests", requests)
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Sequence):
        raise ModelsLabConfigError(
            f"{name} must be a list, got {type(value).__name__}"
            + (
                " (a template rendered to a string? set render_template_as_native_obj=True)"
                if isinstance(value, str)
                else ""
            )
        )
    entries: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        if prompts is not None:
            if not isinstance(item, str) or not item.strip():
                raise ModelsLabConfigError(f"prompts[{i}] must be a non-empty string, got {item!r}")
            entries.append({"prompt": item})
        else:
            if not isinstance(item, Mapping):
                raise ModelsLabConfigError(
                    f"requests[{i}] must be a dict of API parameters, got {type(item).__name__}"
                )
            entries.append(dict(item))
    return entries


def merged_entry(entry: Mapping[str, Any], defaults: Mapping[str, Any] | None) -> dict[str, Any]:
    """What ModelsLab runs for one entry: ``defaults`` under the entry, the entry's value winning."""
    return {**(defaults or {}), **entry}


def validate_entry(merged: Mapping[str, Any], index: int, model_id: str) -> None:
    """The checks ModelsLab makes before queueing anything, so a refusal costs no round trip."""
    _check_no_secrets(merged, f"Input {index}")
    own_model = merged.get("model_id")
    if own_model is not None and own_model != model_id:
        raise ModelsLabConfigError(
            f"Input {index} names model_id {own_model!r}, but every entry of a batch runs on the "
            f"operator's model_id {model_id!r}."
        )
    image = merged.get("init_image")
    prompt = merged.get("prompt")
    has_image = bool(image.strip()) if isinstance(image, str) else bool(image)
    if not has_image and not (isinstance(prompt, str) and prompt.strip()):
        raise ModelsLabConfigError(
            f"Input {index} has neither a prompt (text-to-video) nor an init_image (image-to-video)."
        )


@dataclass(frozen=True)
class BatchPlan:
    """One batch to submit: its entries' positions in the task's input list and their track ids."""

    number: int
    offset: int
    entries: tuple[Mapping[str, Any], ...]
    track_ids: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.entries)

    @property
    def indexes(self) -> range:
        return range(self.offset, self.offset + self.size)


def effective_track_ids(
    entries: Sequence[Mapping[str, Any]],
    defaults: Mapping[str, Any] | None,
    track_id: str | None,
    seed: str,
) -> list[str]:
    """Each input's track id: its own, else ``defaults``', else the top-level one, else derived."""
    out: list[str] = []
    for i, entry in enumerate(entries):
        value = merged_entry(entry, defaults).get("track_id") or track_id or derive_track_id(seed, i)
        text = str(value).strip()
        if not text or len(text) > _TRACK_ID_MAX:
            raise ModelsLabConfigError(
                f"track_id of input {i} must be 1 to {_TRACK_ID_MAX} characters, got {value!r}"
            )
        out.append(text)
    return out


def plan_batches(
    entries: Sequence[Mapping[str, Any]], track_ids: Sequence[str], sizes: Sequence[int] | None = None
) -> list[BatchPlan]:
    """The batches for ``entries`` (balanced chunks of 3 to 20), in input order."""
    sizes = list(sizes) if sizes is not None else batch_sizes(len(entries))
    plans: list[BatchPlan] = []
    offset = 0
    for number, (part, ids) in enumerate(zip(chunk(entries, sizes), chunk(track_ids, sizes), strict=True)):
        plans.append(BatchPlan(number, offset, tuple(part), tuple(ids)))
        offset += len(part)
    return plans


def build_batch_body(
    model_id: str,
    plan: BatchPlan,
    *,
    defaults: Mapping[str, Any] | None = None,
    track_id: str | None = None,
    webhook: str | None = None,
) -> dict[str, Any]:
    """The JSON body of one batch submit, without the key.

    ``defaults`` is sent as such (ModelsLab merges it); every entry carries its own ``track_id`` so
    its result and webhook can be matched to the input.
    """
    model = check_model(model_id)
    if not BATCH_MIN <= plan.size <= BATCH_MAX:
        raise ModelsLabConfigError(
            f"A ModelsLab batch takes {BATCH_MIN} to {BATCH_MAX} entries, got {plan.size}."
        )
    if defaults is not None:
        if not isinstance(defaults, Mapping):
            raise ModelsLabConfigError(
                f"defaults must be a dict of API parameters, got {type(defaults).__name__}"
            )
        _check_no_secrets(defaults, "defaults")
    requests: list[dict[str, Any]] = []
    for position, (entry, tid) in enumerate(zip(plan.entries, plan.track_ids, strict=True)):
        validate_entry(merged_entry(entry, defaults), plan.offset + position, model)
        requests.append({**entry, "track_id": tid})
    body: dict[str, Any] = {"model_id": model, "requests": requests}
    if defaults:
        body["defaults"] = dict(defaults)
    if track_id:
        body["track_id"] = track_id
    if webhook:
        if not core.http_url(webhook):
            raise ModelsLabConfigError(f"webhook must be an http(s) URL, got {webhook!r}")
        body["webhook"] = webhook
    return body


def build_batch_submit(settings: ClientSettings, body: Mapping[str, Any]) -> ApiRequest:
    """The paid batch submit call (never repeated after an ambiguous failure)."""
    _check_no_secrets(body, "The batch body")
    return ApiRequest(
        f"{settings.base_url}/{BATCH_PATH}", {**body, "key": settings.api_key}, idempotent=False
    )


def build_batch_fetch(settings: ClientSettings, batch_id: Any) -> ApiRequest:
    """The free, read-only batch fetch."""
    bid = core.normalise_request_id(batch_id)
    return ApiRequest(f"{settings.base_url}/{BATCH_FETCH_PATH.format(id=bid)}", {"key": settings.api_key})


def single_endpoint(model_id: str, entry: Mapping[str, Any]) -> str:
    """The full-price single endpoint for one entry, for inputs too few for a batch."""
    model = check_model(model_id)
    if model not in SINGLE_ENDPOINTS:
        raise ModelsLabConfigError(
            f"Fewer than {BATCH_MIN} inputs cannot go to the Video Batch API, and ModelsLab documents no "
            f"single-video endpoint for model {model!r} (Text/Image to Video Ultra name only "
            f"{', '.join(SINGLE_ENDPOINTS)}). Pass at least {BATCH_MIN} inputs or another model_id."
        )
    text, image = SINGLE_ENDPOINTS[model]
    return image if entry.get("init_image") else text


# --------------------------------------------------------------------------- responses


@dataclass(frozen=True)
class BatchSubmitted:
    """The answer to a batch submit: the id to poll."""

    batch_id: str
    raw_status: str
    message: str = ""


@dataclass(frozen=True)
class EntryResult:
    """One entry of a batch (or one single-video request standing in for one), normalised."""

    index: int
    status: Status
    raw_status: str
    track_id: str | None = None
    request_id: str | None = None
    urls: tuple[str, ...] = ()
    message: str = ""
    refunded: bool = False

    @property
    def is_terminal(self) -> bool:
        return self.status is not Status.RUNNING

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "status": self.status.value,
            "raw_status": self.raw_status,
            "track_id": self.track_id,
            "request_id": self.request_id,
            "urls": list(self.urls),
            "message": self.message,
            "refunded": self.refunded,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EntryResult:
        """Rebuild from :meth:`to_dict` (trigger events); only http(s) URLs survive."""
        try:
            status = Status(str(data.get("status")))
        except ValueError:
            status = Status.FAILED
        return cls(
            index=int(data.get("index", -1)),
            status=status,
            raw_status=str(data.get("raw_status") or status.value),
            track_id=str(data["track_id"]) if data.get("track_id") is not None else None,
            request_id=str(data["request_id"]) if data.get("request_id") is not None else None,
            urls=core.http_urls(data.get("urls") if isinstance(data.get("urls"), list) else []),
            message=str(data.get("message") or ""),
            refunded=data.get("refunded") is True,
        )


@dataclass(frozen=True)
class BatchStatus:
    """One batch fetch, normalised: the per-entry results in request order."""

    batch_id: str
    raw_status: str
    entries: tuple[EntryResult, ...]
    size: int
    message: str = ""
    output: tuple[str, ...] = field(default=())

    @property
    def finished(self) -> bool:
        """True once every entry is terminal (decided per entry, never from the top level)."""
        return len(self.entries) == self.size and all(e.is_terminal for e in self.entries)

    @property
    def running(self) -> int:
        return sum(1 for e in self.entries if not e.is_terminal)


def parse_batch_submit(data: Mapping[str, Any], status_code: int = 200) -> BatchSubmitted:
    """The batch id of an accepted batch, or the typed error of a refusal (nothing was queued)."""
    raw = data.get("status")
    raw_status = raw.strip().lower() if isinstance(raw, str) else ""
    message = responses.message_of(data)
    if raw_status in ("error", "failed") or status_code >= 400:
        responses.normalise_response(data, status_code)  # bad key, credits, rate limit: typed errors
        raise ModelsLabRequestError(
            f"ModelsLab refused the batch (nothing was queued): {message or f'status {raw_status or raw!r}'}"
        )
    for candidate in (data.get("batch_id"), data.get("id")):
        if candidate is None:
            continue
        try:
            return BatchSubmitted(core.normalise_request_id(candidate), raw_status or "unknown", message)
        except ModelsLabConfigError:
            continue
    raise ModelsLabError(
        f"ModelsLab answered the batch submit with status {raw_status or 'missing'} but no batch id"
    )


def _entry(item: Mapping[str, Any], position: int) -> EntryResult:
    index = item.get("index")
    if isinstance(index, bool) or not isinstance(index, int):
        index = position
    track = item.get("track_id")
    try:
        result = responses.normalise_response(item)
    except ModelsLabError as exc:  # an entry-level "error" body is that entry's failure, not the call's
        return EntryResult(
            index=index,
            status=Status.FAILED,
            raw_status=str(item.get("status") or "error"),
            track_id=str(track) if track is not None else None,
            request_id=responses.request_id_of(item),
            message=str(exc),
            refunded=item.get("refunded") is True,
        )
    return EntryResult(
        index=index,
        status=result.status,
        raw_status=result.raw_status,
        track_id=str(track) if track is not None else None,
        request_id=result.request_id,
        urls=result.urls if result.status is Status.DONE else (),
        message=result.message,
        refunded=item.get("refunded") is True,
    )


def parse_batch_fetch(
    data: Mapping[str, Any], batch_id: str, size: int, status_code: int = 200
) -> BatchStatus:
    """Normalise one batch fetch; "Batch not found" and call-level errors raise typed errors."""
    raw = data.get("status")
    raw_status = raw.strip().lower() if isinstance(raw, str) else ""
    message = responses.message_of(data)
    results = data.get("results")
    if not isinstance(results, list) or not results:
        if _BATCH_NOT_FOUND_RE.search(message) or status_code == 404:
            raise ModelsLabNotFoundError(
                f"ModelsLab does not know batch {batch_id}: {message or 'Batch not found'} (an unknown id, "
                "or one that belongs to another account)."
            )
        if raw_status in ("error", "failed") or status_code >= 400:
            responses.normalise_response(data, status_code)  # typed errors for key, credits, rate limit
    entries: dict[int, EntryResult] = {}
    for position, item in enumerate(results if isinstance(results, list) else []):
        if isinstance(item, Mapping):
            entry = _entry(item, position)
            if 0 <= entry.index < size:
                entries[entry.index] = entry
    ordered = [entries[i] for i in sorted(entries)]
    if raw_status == "failed" and not any(not e.is_terminal for e in ordered) and len(ordered) < size:
        # all-failed batch whose results list is short: the missing entries failed with the batch
        for i in range(size):
            if i not in entries:
                entries[i] = EntryResult(
                    index=i,
                    status=Status.FAILED,
                    raw_status="failed",
                    message=message or "the batch failed without a result for this entry",
                )
        ordered = [entries[i] for i in sorted(entries)]
    return BatchStatus(
        batch_id=batch_id,
        raw_status=raw_status or "unknown",
        entries=tuple(ordered),
        size=size,
        message=message,
        output=core.http_urls(data.get("output")),
    )


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class InputResult:
    """The outcome of one input of the task, in input order (XCom ``results``)."""

    index: int
    track_id: str | None
    job_id: str
    status: str
    request_id: str | None
    urls: tuple[str, ...]
    message: str
    refunded: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "request_id": self.request_id,
            "status": self.status,
            "urls": list(self.urls),
            "message": self.message,
            "refunded": self.refunded,
            "track_id": self.track_id,
            "batch_id": self.job_id,
        }


def assemble(
    jobs: Sequence[Mapping[str, Any]], finished: Mapping[str, Sequence[EntryResult]], count: int
) -> list[InputResult]:
    """One result per input, in input order, from every job's final entries.

    ``jobs`` are the submitted jobs (``id``, ``offset``, ``size``, ``track_ids``); an input whose
    entry is missing from ``finished`` counts as failed, so nothing is silently dropped.
    """
    out: list[InputResult | None] = [None] * count
    for job in jobs:
        by_index = {e.index: e for e in finished.get(str(job["id"]), ())}
        for position in range(int(job["size"])):
            index = int(job["offset"]) + position
            tid = job["track_ids"][position] if position < len(job["track_ids"]) else None
            entry = by_index.get(position)
            if entry is None:
                out[index] = InputResult(
                    index, tid, str(job["id"]), "failed", None, (), "no result reported", False
                )
                continue
            ok = entry.status is Status.DONE and bool(entry.urls)
            out[index] = InputResult(
                index=index,
                track_id=entry.track_id or tid,
                job_id=str(job["id"]),
                status="success" if ok else "failed",
                request_id=entry.request_id,
                urls=entry.urls if ok else (),
                message=entry.message if not ok else "",
                refunded=entry.refunded,
            )
    missing = [i for i, r in enumerate(out) if r is None]
    if missing:
        raise ValueError(f"inputs {missing} belong to no submitted job")
    return [r for r in out if r is not None]


def failure_summary(results: Sequence[InputResult]) -> str:
    """Names each failed input with the API's message and whether ModelsLab refunded it."""
    lines = []
    for r in results:
        if r.status != "success":
            refund = "refunded" if r.refunded else "not refunded"
            lines.append(
                f"input {r.index} (track_id {r.track_id}, request {r.request_id or '?'}, {refund}): "
                f"{r.message or 'no message'}"
            )
    return "; ".join(lines)


# --------------------------------------------------------------------------- waiting


def entry_from_single(result: VideoResult, track_id: str | None) -> EntryResult:
    """A single-video fetch as the one entry of a job (inputs too few for a batch)."""
    ok = result.status is Status.DONE
    return EntryResult(
        index=0,
        status=result.status,
        raw_status=result.raw_status,
        track_id=track_id,
        request_id=result.request_id,
        urls=result.urls if ok else (),
        message=result.message if not ok else "",
    )


@dataclass
class BatchWait:
    """The state of one task's wait for all of its jobs; shared by the sync loop and the trigger.

    Each round fetches every unfinished job once (one fetch per batch, never one per video), feeds
    the answers in, then asks :meth:`next_round` what to do. Finished jobs are never fetched again.
    """

    jobs: Mapping[str, int]
    started_at: float
    deadline: float | None = None
    poll: PollPolicy = field(default_factory=PollPolicy)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    finished: dict[str, tuple[EntryResult, ...]] = field(default_factory=dict)
    rounds: int = 0
    fetches: int = 0
    transient_errors: int = 0
    latest: dict[str, tuple[EntryResult, ...]] = field(default_factory=dict)

    def pending(self) -> list[str]:
        return [job_id for job_id in self.jobs if job_id not in self.finished]

    def on_status(self, job_id: str, entries: Sequence[EntryResult]) -> None:
        self.fetches += 1
        size = self.jobs[job_id]
        self.latest[job_id] = tuple(entries)
        if len(entries) == size and all(e.is_terminal for e in entries):
            self.finished[job_id] = tuple(entries)

    def next_round(self, now: float, errors: Sequence[BaseException] = (), jitter: float = 0.0) -> Decision:
        """After a round: done, fail (a non-transient error or the deadline) or wait N seconds."""
        self.rounds += 1
        for error in errors:
            if not isinstance(error, ModelsLabTransientError):
                if isinstance(error, ModelsLabError):
                    return Decision(Action.FAIL, error=error)
                raise error
        if not self.pending():
            return Decision(Action.DONE)
        if errors:
            self.transient_errors += 1
            delay = self.poll.error_delay(self.transient_errors, errors[0], self.retry, jitter)
        else:
            self.transient_errors = 0
            delay = self.poll.next_delay(elapsed=now - self.started_at, eta=None, jitter=jitter)
        return self._wait(now, delay)

    def first_delay(self, now: float) -> float:
        """Batches have no documented ETA: the first poll comes after the policy's shortest pause."""
        remaining = None if self.deadline is None else self.deadline - now
        delay = self.poll.min_interval
        return max(min(delay, remaining), 0.0) if remaining is not None else delay

    def timed_out(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline

    def timeout_error(self, now: float) -> ModelsLabTimeoutError:
        running = sum(
            1 for job_id in self.pending() for e in self.latest.get(job_id, ()) if not e.is_terminal
        )
        return ModelsLabTimeoutError(
            f"ModelsLab batches {', '.join(self.pending())} were not finished after "
            f"{now - self.started_at:.0f} s ({self.rounds} polling rounds, {running} entries still "
            "running); ModelsLab fails and refunds batch entries unfinished 8 minutes after submission."
        )

    def _wait(self, now: float, delay: float) -> Decision:
        if self.deadline is not None:
            remaining = self.deadline - now
            if remaining <= 0:
                return Decision(Action.FAIL, error=self.timeout_error(now))
            delay = min(delay, remaining)
        return Decision(Action.WAIT, delay=delay)
