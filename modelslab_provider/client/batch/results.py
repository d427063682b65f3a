"""Video Batch answers, normalised: the submit's batch id, each fetch's entries, and one result per input.

Pure (no I/O, no clock). The docs do not say what a mixed outcome reports at the top level, so
completion is decided from the per-entry ``results``, never from the top-level status alone
(https://docs.modelslab.com/video-api/fetch-video-batch).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelslab_provider.client import core, responses
from modelslab_provider.client.core import Status, VideoResult
from modelslab_provider.client.errors import (
    ModelsLabConfigError,
    ModelsLabError,
    ModelsLabNotFoundError,
    ModelsLabRequestError,
)

_BATCH_NOT_FOUND_RE = re.compile(r"batch not found", re.I)

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
