"""Per-job scenario markers: ``[sim:k=v k=v]`` inside any string of a submit body.

Markers let a test or demo pick how one job behaves (timing, outcome, quirks, faults) without
touching the simulator's global configuration. Stdlib only, so it is cheap to import.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

MARKER_RE = re.compile(r"\[sim:([^\]]*)\]")

OUTCOMES = frozenset({"success", "failed", "error", "cancelled", "expired", "never"})
RUNNING_STATUSES = frozenset({"processing", "queued", "pending", "starting"})
HTML_FAULTS = frozenset({"500", "502", "503", "504", "520", "522", "524"})
#: ``502_after`` etc.: the job is queued (and billed), then a gateway answers the 5xx HTML page
QUEUED_HTML_FAULTS = frozenset(f"{code}_after" for code in HTML_FAULTS)
FAULT_KINDS = HTML_FAULTS | frozenset(
    {
        "empty",
        "truncated",
        "slow",
        "drop",
        "drop_after",
        "429",
        "429bare",
        "ratelimit200",
        "unknown",
        "notfound",
        "403",
    }
)
#: ``fail_text=<name>``: a terminal failure whose message uses words that also appear in errors
#: about the call itself; the job's failure must win over the words (docs: webhooks failure payload)
FAIL_TEXTS = {
    "ratelimit": "Provider rate limit exceeded. Maximum 5 queued requests allowed, try again in 30 seconds",
    "refunded": "Generation failed; your credits have been refunded",
    "auth": "Upstream authentication error; invalid api key for the provider",
}

_BOOL_KEYS = ("messege", "instant", "future_only", "output_str", "no_id", "string_id")
_NUM_KEYS = ("duration", "eta", "slow_s", "file_delay", "file_ttl", "retry_after", "batch_limit")
_INT_KEYS = ("polls", "empty_polls", "submit_fault_times")
KNOWN_KEYS = frozenset(
    _BOOL_KEYS
    + _NUM_KEYS
    + _INT_KEYS
    + ("outcome", "fault", "fault_on", "submit_fault", "running_status", "fail_text")
)


class MarkerError(ValueError):
    """A ``[sim:...]`` marker that cannot be understood; reported to the caller as HTTP 400."""


@dataclass
class Scenario:
    """How one job behaves; ``None`` fields fall back to the simulator's runtime config."""

    duration: float | None = None
    polls: int | None = None
    eta: float | None = None
    outcome: str = "success"
    running_status: str = "processing"
    messege: bool = False
    instant: bool = False
    empty_polls: int = 0
    future_only: bool = False
    output_str: bool = False
    fault: str | None = None
    fault_on: frozenset[int] = field(default_factory=lambda: frozenset({1}))
    slow_s: float = 35.0
    submit_fault: str | None = None
    submit_fault_times: int = 1
    file_delay: float | None = None
    file_ttl: float | None = None
    retry_after: float | None = None
    no_id: bool = False
    string_id: bool = False
    fail_text: str | None = None
    #: seconds after which this batch's unfinished entries are failed and refunded (overrides the
    #: simulator's ``batch_entry_limit``, the documented 8 minutes, for one batch)
    batch_limit: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly view for ``/_sim/jobs``."""
        data = asdict(self)
        data["fault_on"] = sorted(self.fault_on)
        return data


def number(text: str) -> float:
    """Parse ``"3"`` as int 3 and ``"2.5"`` as float, keeping the type the caller wrote."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise MarkerError(f"not a number: {text!r}") from None


def _iter_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            if k != "key":
                yield from _iter_strings(v)
    elif isinstance(value, list):
        for item in value:
            yield from _iter_strings(item)


def find_markers(body: Any) -> list[str]:
    """Return the full text of every marker found in the body's strings (the ``key`` field is skipped)."""
    found: list[str] = []
    for text in _iter_strings(body):
        found.extend(m.group(0) for m in MARKER_RE.finditer(text))
    return found


def parse_pairs(text: str) -> dict[str, str]:
    """Split ``"k=v k=v"`` (the inside of a marker, or a default scenario string) into a dict."""
    pairs: dict[str, str] = {}
    for pair in text.split():
        name, sep, value = pair.partition("=")
        if not sep:
            raise MarkerError(f"expected k=v, got {pair!r}")
        if name not in KNOWN_KEYS:
            raise MarkerError(f"unknown simulator marker key: {name}")
        pairs[name] = value
    return pairs


def _parse_fault_on(value: str) -> frozenset[int]:
    try:
        numbers = frozenset(int(part) for part in value.split(",") if part)
    except ValueError:
        raise MarkerError(f"fault_on must be integers, got {value!r}") from None
    if not numbers:
        raise MarkerError("fault_on must name at least one fetch number")
    return numbers


def build_scenario(pairs: dict[str, str]) -> Scenario:
    """Turn marker pairs into a validated ``Scenario``."""
    sc = Scenario()
    for name, value in pairs.items():
        if name in _BOOL_KEYS:
            setattr(sc, name, value.lower() in ("1", "true", "yes", "on"))
        elif name in _NUM_KEYS:
            setattr(sc, name, number(value))
        elif name in _INT_KEYS:
            parsed = number(value)
            if not isinstance(parsed, int):
                raise MarkerError(f"{name} must be an integer")
            setattr(sc, name, parsed)
        elif name == "outcome":
            if value not in OUTCOMES:
                raise MarkerError(f"unknown outcome: {value}")
            sc.outcome = value
        elif name == "running_status":
            if value not in RUNNING_STATUSES:
                raise MarkerError(f"unknown running_status: {value}")
            sc.running_status = value
        elif name in ("fault", "submit_fault"):
            if value not in FAULT_KINDS | QUEUED_HTML_FAULTS:
                raise MarkerError(f"unknown fault kind: {value}")
            setattr(sc, name, value)
        elif name == "fault_on":
            sc.fault_on = _parse_fault_on(value)
        elif name == "fail_text":
            if value not in FAIL_TEXTS:
                raise MarkerError(f"unknown fail_text: {value} (one of {', '.join(sorted(FAIL_TEXTS))})")
            sc.fail_text = value
    if sc.polls is not None and sc.polls < 1:
        raise MarkerError("polls must be >= 1")
    return sc


def scenario_from(default_text: str, markers: list[str]) -> Scenario:
    """Merge the runtime default scenario string with the job's markers (markers win, later ones last)."""
    pairs = parse_pairs(default_text) if default_text else {}
    for marker in markers:
        match = MARKER_RE.fullmatch(marker)
        if match:
            job_pairs = parse_pairs(match.group(1))
            if "duration" in job_pairs and "polls" not in job_pairs:
                pairs.pop("polls", None)
            pairs.update(job_pairs)
    return build_scenario(pairs)
