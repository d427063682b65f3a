"""Simulator state and response logic: runtime config, jobs, request log, stats (stdlib only).

Everything here is synchronous and runs on the server's event loop thread. Job state is derived
lazily from timestamps and poll counters, so thousands of waiting jobs cost no timers. The API key
itself is never kept: only its SHA-256 digest (for ownership and comparison) and a 12-hex fingerprint.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import math
import random
import re
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from .scenario import FAIL_TEXTS, MarkerError, Scenario, find_markers, number, scenario_from

START_ID = 150000001

PREFIXES = {"v6": "/api/v6/video", "v7": "/api/v7/video-fusion"}
ENDPOINTS = {
    "v6": frozenset(
        {"text2video", "img2video", "text2video_ultra", "img2video_ultra", "video2video", "watermark_remover"}
    ),
    "v7": frozenset({"text-to-video", "image-to-video", "video-to-video", "lip-sync", "motion-control"}),
}
REQUIRED_FIELDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("v6", "text2video"): ("prompt",),
    ("v6", "text2video_ultra"): ("prompt",),
    ("v6", "img2video"): ("init_image",),
    ("v6", "img2video_ultra"): ("init_image",),
    ("v6", "video2video"): ("init_video",),
    ("v6", "watermark_remover"): ("init_video",),
    ("v7", "text-to-video"): ("prompt",),
    ("v7", "image-to-video"): ("init_image",),
    ("v7", "video-to-video"): ("init_video",),
    ("v7", "lip-sync"): ("init_video", "init_audio"),
    ("v7", "motion-control"): ("init_image", "init_video"),
}
V7_MODELS = frozenset(
    {
        "seedance-t2v",
        "seedance-i2v",
        "veo-2",
        "veo-3",
        "veo-3.1",
        "kling-v1.6",
        "kling-v2.1",
        "wan2.5",
        "wan2.6",
        "hailuo-2.3",
        "sora-2",
        "sora-2-pro",
        "ltx-2.3",
        "lipsync-2",
        # ids as the model pages' examples spell them (https://modelslab.com/models/google/Veo-3.1-fast/api,
        # .../google/veo3-fast/api, .../klingai/Kling%20V1.6%20Multi%20Image%20To%20Video/api,
        # .../klingai/Kling-V2-5-Turbo-image-to-video/api)
        "veo-3.1-fast",
        "veo-3.0-fast-generate",
        "kling-v1-6",
        "kling-v2-1-master-i2v",
        "Kling-V2-5-Turbo-i2v",
    }
)
#: allowed ``duration`` values by model family, from the model pages: Veo "4, 6, or 8"
#: (Veo-3.1-fast page), Kling "5,10" (Kling V1.6 multi-image and V2.5 Turbo pages)
V7_DURATIONS = {"veo": frozenset({4, 6, 8}), "kling": frozenset({5, 10})}
#: Veo pages: "16:9 is wide, 9:16 for Vertical"; the Kling multi-image page adds 1:1
V7_ASPECT_RATIOS = {"veo": frozenset({"16:9", "9:16"}), "kling": frozenset({"16:9", "9:16", "1:1"})}
ANY_ASPECT_RATIO = frozenset({"16:9", "9:16", "1:1", "4:3", "3:4"})
#: the Kling multi-image page sends up to four reference images in ``init_image``
V7_MAX_IMAGES = 4
_RESOLUTION_RE = re.compile(r"^(\d{3,4}[pP]?|4[kK])$")

SUBMIT_TIP = "Your video is processing in background, you can get this video using fetch API"
FETCH_TIP = "Get 20x faster video generation using enterprise plan."
FAILURE_MESSAGES = {
    "failed": "Processing failed: simulated failure",
    "error": "Generation failed: simulated error",
    "cancelled": "Request cancelled: simulated cancellation",
    "expired": "Request expired: simulated expiry",
    "forced": "Processing failed: forced by simulator admin",
}
HTML_TITLES = {
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway time-out",
    520: "Web server is returning an unknown error",
    522: "Connection timed out",
    524: "A timeout occurred",
}


def key_digest(key: str) -> str:
    """Full SHA-256 hex of a key: used for ownership and comparison, never shown."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def fingerprint(key: str | None) -> str | None:
    """First 12 hex of the key's SHA-256: the only key-derived value the simulator exposes."""
    if not isinstance(key, str) or not key:
        return None
    return key_digest(key)[:12]


def redact(value: Any, key: str | None) -> Any:
    """Copy of a JSON value without any ``key`` field and with the key's text masked in strings."""
    secret = key if isinstance(key, str) and len(key) >= 4 else None
    if isinstance(value, dict):
        return {k: redact(v, key) for k, v in value.items() if k != "key"}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if isinstance(value, str) and secret and secret in value:
        return value.replace(secret, "***")
    return value


def _clean_number(value: float) -> float:
    """Return ints as ints, floats rounded to two places (eta, retry_after)."""
    if isinstance(value, int):
        return value
    return round(value, 2)


@dataclass
class Reply:
    """What the HTTP layer should send: a JSON dict, text or bytes, or a delay/drop instruction."""

    status: int = 200
    body: Any = None
    content_type: str = "application/json"
    delay: float = 0.0
    then: Callable[[], Reply] | None = None
    drop: bool = False
    job_id: int | None = None


def error_reply(message: str, status: int = 200, messege: bool = False, **extra: Any) -> Reply:
    """A ModelsLab-style ``{"status": "error", "message": ...}`` reply."""
    body: dict[str, Any] = {"status": "error", ("messege" if messege else "message"): message}
    body.update(extra)
    return Reply(status, body)


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes", "on")
    return bool(value)


def _non_negative(name: str, value: Any) -> float:
    if isinstance(value, str):
        value = number(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or math.isnan(value):
        raise ValueError(f"{name} must be a non-negative number")
    return value


_CHOICES = {
    "rate_limit_style": ("429", "200"),
    "auth_error_status": ("200", "401"),
    "not_found_status": ("200", "404"),
}


@dataclass
class SimConfig:
    """Runtime defaults, settable at start-up (CLI / ``Simulator(**kw)``) or via ``POST /_sim/config``."""

    queue_limit: int = 0
    rate_limit_style: str = "429"
    auth_error_status: int = 200
    duration: float = 2
    eta: float | None = None
    file_delay: float = 0
    retry_after: float = 2
    not_found_status: int = 200
    strict_fetch_version: bool = False
    scenario: str = ""
    balance: float = 43.6
    #: seconds after submission when an unfinished batch entry is failed and refunded (docs: 8 min)
    batch_entry_limit: float = 480
    api_key_digest: str | None = field(default=None, repr=False)

    SETTABLE = (
        "queue_limit",
        "rate_limit_style",
        "auth_error_status",
        "duration",
        "eta",
        "file_delay",
        "retry_after",
        "not_found_status",
        "strict_fetch_version",
        "scenario",
        "balance",
        "batch_entry_limit",
        "api_key",
    )

    def update(self, **values: Any) -> None:
        """Validate and apply settings; raises ``ValueError`` and changes nothing on bad input."""
        staged = copy.copy(self)
        for name, value in values.items():
            staged._set(name, value)
        for f in fields(self):
            setattr(self, f.name, getattr(staged, f.name))

    def _set(self, name: str, value: Any) -> None:
        if name == "queue_limit":
            limit = _non_negative(name, value)
            if int(limit) != limit:
                raise ValueError("queue_limit must be an integer")
            self.queue_limit = int(limit)
        elif name in _CHOICES:
            allowed = _CHOICES[name]
            if str(value) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}")
            setattr(self, name, str(value) if name == "rate_limit_style" else int(value))
        elif name in ("duration", "file_delay", "retry_after", "balance", "batch_entry_limit"):
            setattr(self, name, _non_negative(name, value))
        elif name == "eta":
            self.eta = None if value is None else _non_negative(name, value)
        elif name == "strict_fetch_version":
            self.strict_fetch_version = _as_bool(value)
        elif name == "scenario":
            text = "" if value is None else str(value)
            try:
                scenario_from(text, [])
            except MarkerError as exc:
                raise ValueError(f"scenario: {exc}") from None
            self.scenario = text
        elif name == "api_key":
            if value is not None and not isinstance(value, str):
                raise ValueError("api_key must be a string or null")
            self.api_key_digest = key_digest(value) if value else None
        else:
            raise ValueError(f"unknown config setting: {name} (settable: {', '.join(self.SETTABLE)})")

    def public(self) -> dict[str, Any]:
        """Config as JSON, with the expected key reduced to a flag and fingerprint."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "api_key_digest"}
        data["api_key_set"] = self.api_key_digest is not None
        data["api_key_fingerprint"] = self.api_key_digest[:12] if self.api_key_digest else None
        return data


@dataclass
class Job:
    """One generation request; its status is computed from timestamps and counters on demand."""

    id: int
    version: str
    endpoint: str
    owner: str
    scenario: Scenario
    meta: dict[str, Any]
    file_name: str
    submitted_at: float
    ready_at: float | None
    eta: float
    generation_time: float
    polls: int = 0
    success_fetches: int = 0
    forced: str | None = None
    terminal_served: bool = False
    fetches_after_terminal: int = 0

    def outcome(self, now: float) -> str | None:
        """Terminal outcome at ``now`` (``success``, ``failed``...), or ``None`` while running."""
        if self.forced:
            return self.forced
        if self.ready_at is not None and now >= self.ready_at:
            return self.scenario.outcome
        return None

    @property
    def public_id(self) -> int | str:
        return str(self.id) if self.scenario.string_id else self.id


class SimState:
    """All mutable simulator state plus the ModelsLab behaviour that reads and updates it."""

    def __init__(
        self,
        config: SimConfig | None = None,
        seed: int | None = None,
        clock: Callable[[], float] = time.time,
        max_log: int = 100_000,
    ) -> None:
        self.initial_config = copy.copy(config or SimConfig())
        self.config = copy.copy(self.initial_config)
        self.clock = clock
        self.rng = random.Random(seed)  # noqa: S311 - test data, not crypto
        self.next_id = START_ID
        self.max_log = max_log
        self._clear()

    def _clear(self) -> None:
        self.jobs: dict[int, Job] = {}
        self.files: dict[str, Job] = {}
        self.running_by_owner: dict[str, list[Job]] = {}
        self.log: deque[dict[str, Any]] = deque(maxlen=self.max_log)
        self.counters: Counter[str] = Counter()
        self.rejections: Counter[str] = Counter()
        self.submit_fault_counts: Counter[str] = Counter()
        self.batches: dict[int, Any] = {}  # id -> simulator.batch.Batch
        self.seq = 0

    def reset(self) -> None:
        """Forget jobs, log and counters, and restore the start-up config (ids keep increasing)."""
        self._clear()
        self.config = copy.copy(self.initial_config)

    # ----- request log -------------------------------------------------------------------

    def record(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Append a request-log entry (already key-free) and return it for later enrichment."""
        self.seq += 1
        entry["seq"] = self.seq
        self.log.append(entry)
        return entry

    # ----- auth --------------------------------------------------------------------------

    def check_key(self, key: Any, *, submit: bool, messege: bool = False) -> Reply | None:
        """Return an auth error reply, or ``None`` when the key is accepted."""
        cfg = self.config
        strict = cfg.auth_error_status == 401
        if not isinstance(key, str) or not key:
            return error_reply("API key required", 401 if strict else 200, messege)
        if cfg.api_key_digest is not None:
            valid = hmac.compare_digest(key_digest(key), cfg.api_key_digest)
        else:
            valid = not key.startswith("invalid")
        if not valid:
            return error_reply("Invalid API key", 401 if strict else 200, messege)
        if submit and "nocredit" in key:
            return error_reply(
                "Insufficient credits. Please add more credits to continue.", 402 if strict else 200, messege
            )
        return None

    # ----- queue -------------------------------------------------------------------------

    def running_count(self, owner: str) -> int:
        """Number of this owner's jobs still running; prunes finished ones as it goes."""
        now = self.clock()
        jobs = [job for job in self.running_by_owner.get(owner, []) if job.outcome(now) is None]
        self.running_by_owner[owner] = jobs
        return len(jobs)

    def processing_count(self, key: str) -> int:
        return self.running_count(key_digest(key))

    def _retry_after(self, sc: Scenario | None) -> float:
        value = sc.retry_after if sc is not None and sc.retry_after is not None else self.config.retry_after
        return _clean_number(value)

    # ----- faults ------------------------------------------------------------------------

    def fault_reply(self, kind: str, sc: Scenario, resume: Callable[[], Reply]) -> Reply:
        """Build the reply for a simulated infrastructure fault; ``resume`` gives the normal answer."""
        wait = self._retry_after(sc)
        if kind.isdigit() and int(kind) >= 500:
            code = int(kind)
            title = HTML_TITLES.get(code, "Server error")
            ray = f"{self.rng.getrandbits(64):016x}"
            html = (
                "<!DOCTYPE html>\n<html><head><title>modelslab.com | "
                f"{code}: {title}</title></head>\n<body><h1>{title}</h1><p>Error code {code}</p>"
                f"<p>Cloudflare Ray ID: {ray}</p></body></html>\n"
            )
            return Reply(code, html, "text/html")
        if kind == "empty":
            return Reply(200, b"")
        if kind == "truncated":
            text = json.dumps({"status": "processing", "message": "try again later.", "tip": FETCH_TIP})
            return Reply(200, text[: len(text) // 2].encode())
        if kind == "slow":
            return Reply(delay=sc.slow_s, then=resume)
        if kind == "drop":
            return Reply(drop=True)
        if kind == "drop_after":
            return Reply(drop=True, job_id=resume().job_id)
        if kind.endswith("_after") and kind.removesuffix("_after").isdigit():
            # the origin queued the job; the gateway in front of it still answers a 5xx page
            job_id = resume().job_id
            reply = self.fault_reply(kind.removesuffix("_after"), sc, resume)
            reply.job_id = job_id
            return reply
        if kind == "429":
            return error_reply(
                f"Too many requests. Please retry after {wait} seconds.", 429, sc.messege, retry_after=wait
            )
        if kind == "429bare":
            return Reply(429, "Too Many Requests", "text/plain")
        if kind == "ratelimit200":
            return error_reply(f"Too many requests, try again in {wait} seconds", 200, sc.messege)
        if kind == "unknown":
            return Reply(200, {"status": "weird_state", "message": "simulated unknown status"})
        if kind == "403":  # docs (error-codes): the feature is not available on the current plan
            return error_reply("This feature is not available on your current plan", 403, sc.messege)
        if kind == "notfound":
            return error_reply("Request not found", self.config.not_found_status, sc.messege)
        raise ValueError(f"unknown fault kind {kind}")

    # ----- submit ------------------------------------------------------------------------

    def submit(self, version: str, endpoint: str, body: dict[str, Any], key: Any, base_url: str) -> Reply:
        """Handle a generation submit; returns processing (or instant success) or an error reply."""
        self.counters["submits"] += 1
        markers = find_markers(body)
        try:
            sc = scenario_from(self.config.scenario, markers)
        except MarkerError as exc:
            self.rejections["marker"] += 1
            return error_reply(f"Invalid simulator marker: {exc}", 400)

        if sc.submit_fault:
            marker_id = " ".join(markers) or "<default>"
            if self.submit_fault_counts[marker_id] < sc.submit_fault_times:
                self.submit_fault_counts[marker_id] += 1
                self.rejections["fault"] += 1
                return self.fault_reply(
                    sc.submit_fault, sc, lambda: self._accept(version, endpoint, body, key, base_url, sc)
                )
        return self._accept(version, endpoint, body, key, base_url, sc)

    def _accept(
        self, version: str, endpoint: str, body: dict[str, Any], key: Any, base_url: str, sc: Scenario
    ) -> Reply:
        auth = self.check_key(key, submit=True, messege=sc.messege)
        if auth is not None:
            self.rejections["auth"] += 1
            return auth
        invalid = self._validate(version, endpoint, body)
        if invalid:
            self.rejections["validation"] += 1
            return error_reply(invalid, 200, sc.messege)
        owner = key_digest(key)
        limit = self.config.queue_limit
        if limit and self.running_count(owner) >= limit:
            self.rejections["queue_limit"] += 1
            wait = self._retry_after(sc)
            if self.config.rate_limit_style == "429":
                return error_reply(
                    f"Rate limit exceeded. Maximum {limit} queued requests allowed.",
                    429,
                    sc.messege,
                    retry_after=wait,
                )
            return error_reply(
                f"You have reached the maximum of {limit} queued requests, try again in {wait} seconds",
                200,
                sc.messege,
            )
        job = self._create(version, endpoint, body, key, owner, sc)
        if sc.instant and job.outcome(job.submitted_at) is not None:
            reply = self._terminal_body(job, base_url)
        else:
            reply = Reply(200, self._processing_submit_body(job, base_url))
        reply.job_id = job.id
        return reply

    @staticmethod
    def _validate(version: str, endpoint: str, body: dict[str, Any]) -> str | None:
        if version == "v7":
            model = body.get("model_id")
            if model is None or model == "":
                return "model_id is required"
            if not isinstance(model, str) or not (model in V7_MODELS or model.startswith("sim-")):
                return f"Model not found: {model}"
            invalid = SimState._validate_v7_fields(model, body)
            if invalid:
                return invalid
        for name in REQUIRED_FIELDS.get((version, endpoint), ()):
            value = body.get(name)
            if isinstance(value, str):
                value = value.strip()
            if not value:
                return f"{name} is required"
        return None

    @staticmethod
    def _validate_v7_fields(model: str, body: dict[str, Any]) -> str | None:
        """The v7 video-fusion fields the model pages document, checked as those pages describe them."""
        family = next((f for f in V7_DURATIONS if model.lower().startswith(f)), None)
        duration = body.get("duration")
        if duration is not None:
            text = (
                str(duration).strip()
                if isinstance(duration, str | int) and not isinstance(duration, bool)
                else ""
            )
            if not text.isdigit() or int(text) <= 0:
                return f"The duration field must be a whole number of seconds, got {duration!r}"
            allowed = V7_DURATIONS.get(family or "")
            if allowed and int(text) not in allowed:
                return f"duration must be one of {', '.join(map(str, sorted(allowed)))} for {model}"
        ratio = body.get("aspect_ratio")
        if ratio is not None:
            allowed_ratios = V7_ASPECT_RATIOS.get(
                family or "", frozenset({"16:9", "9:16", "1:1", "4:3", "3:4"})
            )
            if ratio not in allowed_ratios:
                return f"aspect_ratio must be one of {', '.join(sorted(allowed_ratios))} for {model}"
        resolution = body.get("resolution")
        if resolution is not None and not (isinstance(resolution, str) and _RESOLUTION_RE.match(resolution)):
            return f"resolution must be a string such as 720p or 1080p, got {resolution!r}"
        if "generate_audio" in body and not isinstance(body["generate_audio"], bool):
            return "The generate_audio field must be true or false."
        for name in ("init_audio", "negative_prompt"):
            value = body.get(name)
            if value is not None and not isinstance(value, str):
                return f"The {name} field must be a string."
        image = body.get("init_image")
        if image is not None:
            images = image if isinstance(image, list) else [image]
            if not images or not all(isinstance(i, str) and i.strip() for i in images):
                return "init_image must be an image URL or a list of image URLs"
            if len(images) > V7_MAX_IMAGES:
                return f"init_image accepts at most {V7_MAX_IMAGES} images"
        return None

    def _create(
        self, version: str, endpoint: str, body: dict[str, Any], key: str, owner: str, sc: Scenario
    ) -> Job:
        now = self.clock()
        job_id = self.next_id
        self.next_id += 1
        file_name = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        duration = sc.duration if sc.duration is not None else self.config.duration
        if sc.instant:
            duration = 0
        if sc.eta is not None:
            eta = sc.eta
        elif self.config.eta is not None:
            eta = self.config.eta
        else:
            eta = duration
        if sc.outcome == "never" or (sc.polls is not None and not sc.instant):
            ready_at = None
        else:
            ready_at = now + duration
        meta = redact(body, key)
        meta.update(
            {
                "id": str(job_id),
                "webhook": body.get("webhook"),
                "track_id": body.get("track_id"),
                "file_prefix": file_name,
            }
        )
        job = Job(
            id=job_id,
            version=version,
            endpoint=endpoint,
            owner=owner,
            scenario=sc,
            meta=meta,
            file_name=file_name,
            submitted_at=now,
            ready_at=ready_at,
            eta=_clean_number(eta),
            generation_time=round(max(float(duration), 0.5) + self.rng.uniform(0.0, 0.5), 2),
        )
        self.jobs[job_id] = job
        self.files[file_name] = job
        self.running_by_owner.setdefault(owner, []).append(job)
        self.counters["jobs_created"] += 1
        return job

    def _urls(self, job: Job, base_url: str) -> tuple[str, str]:
        return (f"{base_url}/files/{job.file_name}.mp4", f"{base_url}/proxy/{job.file_name}.mp4")

    def _message(self, body: dict[str, Any], sc: Scenario, text: str) -> None:
        body["messege" if sc.messege else "message"] = text

    def _processing_submit_body(self, job: Job, base_url: str) -> dict[str, Any]:
        sc = job.scenario
        file_url, _ = self._urls(job, base_url)
        body: dict[str, Any] = {"status": sc.running_status, "tip": SUBMIT_TIP, "eta": job.eta}
        self._message(body, sc, "Try to fetch request after seconds estimated")
        body["fetch_result"] = f"{base_url}{PREFIXES[job.version]}/fetch/{job.id}"
        if not sc.no_id:
            body["id"] = job.public_id
        body.update({"output": [], "meta": job.meta, "future_links": [file_url]})
        return body

    # ----- fetch -------------------------------------------------------------------------

    def lookup(self, id_text: str) -> Job | None:
        try:
            return self.jobs.get(int(id_text))
        except ValueError:
            return None

    def fetch(self, version: str, id_text: str, key: Any, base_url: str) -> Reply:
        """Handle a fetch of one job: counts the poll, fires faults, or reports the lazy state."""
        job = self.lookup(id_text)
        sc = job.scenario if job is not None else None
        auth = self.check_key(key, submit=False, messege=bool(sc and sc.messege))
        if auth is not None:
            self.counters["fetches_rejected"] += 1
            return auth
        if job is None or sc is None or (self.config.strict_fetch_version and job.version != version):
            self.counters["fetches_unknown"] += 1
            return error_reply("Request not found", self.config.not_found_status)
        self.counters["fetches"] += 1
        if job.terminal_served:
            job.fetches_after_terminal += 1
            self.counters["fetches_after_terminal"] += 1
        self.count_poll(job)
        if sc.fault and job.polls in sc.fault_on:
            self.counters["faults"] += 1
            kind = sc.fault.removesuffix("_after")  # on a fetch there is nothing to queue
            return self.fault_reply(kind, sc, lambda: self._fetch_answer(job, version, base_url))
        return self._fetch_answer(job, version, base_url)

    def count_poll(self, job: Job) -> None:
        """One more poll of ``job`` (a fetch, or a batch fetch reporting it); ``polls=N`` jobs end here."""
        job.polls += 1
        sc = job.scenario
        if sc.polls is not None and job.ready_at is None and sc.outcome != "never" and job.polls >= sc.polls:
            job.ready_at = self.clock()

    def _fetch_answer(self, job: Job, version: str, base_url: str) -> Reply:
        now = self.clock()
        sc = job.scenario
        if job.outcome(now) is None:
            body: dict[str, Any] = {"status": sc.running_status}
            self._message(body, sc, "try again later.")
            body.update({"output": "", "tip": FETCH_TIP})
            if version == "v7":
                remaining = max(0.0, float(job.eta) - (now - job.submitted_at))
                body["id"] = job.public_id
                body["eta"] = math.ceil(remaining) if isinstance(job.eta, int) else round(remaining, 2)
                body["future_links"] = [self._urls(job, base_url)[0]]
            return Reply(200, body)
        return self._terminal_body(job, base_url)

    def _terminal_body(self, job: Job, base_url: str) -> Reply:
        sc = job.scenario
        outcome = job.outcome(self.clock())
        if outcome != "success":
            text = FAILURE_MESSAGES["forced"] if job.forced == "failed" else FAILURE_MESSAGES[str(outcome)]
            if sc.fail_text and job.forced != "failed":
                text = FAIL_TEXTS[sc.fail_text]
            body: dict[str, Any] = {"status": outcome, "id": job.public_id}
            self._message(body, sc, text)
            body["track_id"] = job.meta.get("track_id")
            job.terminal_served = True
            return Reply(200, body)
        job.success_fetches += 1
        empty = sc.empty_polls == -1 or job.success_fetches <= sc.empty_polls
        file_url, proxy_url = self._urls(job, base_url)
        output: Any = file_url if sc.output_str else [file_url]
        proxy: list[str] = [proxy_url]
        future: list[str] = [file_url]
        if empty:
            output, proxy, future = [], [], []
        elif sc.future_only:
            output, proxy = [], []
        body = {
            "status": "success",
            "generationTime": job.generation_time,
            "id": job.public_id,
            "output": output,
            "proxy_links": proxy,
            "future_links": future,
            "meta": job.meta,
        }
        if not empty:
            job.terminal_served = True
        return Reply(200, body)

    # ----- files -------------------------------------------------------------------------

    def file_available(self, name: str) -> bool:
        """Whether ``/files/<name>`` (or the proxy copy) is downloadable right now."""
        stem, dot, ext = name.rpartition(".")
        if not dot or ext != "mp4":
            return False
        job = self.files.get(stem)
        if job is None:
            return True
        now = self.clock()
        if job.outcome(now) != "success" or job.ready_at is None:
            return False
        sc = job.scenario
        delay = sc.file_delay if sc.file_delay is not None else self.config.file_delay
        if now < job.ready_at + delay:
            return False
        return not (sc.file_ttl is not None and now >= job.ready_at + sc.file_ttl)

    # ----- admin -------------------------------------------------------------------------

    def force(self, id_text: str, outcome: str) -> bool:
        """Force a job to ``success`` or ``failed`` now; ``False`` when the id is unknown."""
        job = self.lookup(id_text)
        if job is None:
            return False
        now = self.clock()
        job.forced = outcome
        if job.ready_at is None or job.ready_at > now:
            job.ready_at = now
        return True

    def jobs_snapshot(self) -> dict[str, Any]:
        now = self.clock()
        return {
            str(job.id): {
                "endpoint": job.endpoint,
                "version": job.version,
                "status": job.outcome(now) or job.scenario.running_status,
                "polls": job.polls,
                "submitted_at": job.submitted_at,
                "ready_at": job.ready_at,
                "eta": job.eta,
                "key_fingerprint": job.owner[:12],
                "fetches_after_terminal": job.fetches_after_terminal,
                "scenario": job.scenario.as_dict(),
            }
            for job in self.jobs.values()
        }

    def stats_snapshot(self) -> dict[str, Any]:
        now = self.clock()
        counters = self.counters
        return {
            "submits": counters["submits"],
            "jobs_created": counters["jobs_created"],
            "submit_rejected": dict(self.rejections),
            "fetches": counters["fetches"],
            "fetches_per_job": {str(j.id): j.polls for j in self.jobs.values()},
            "fetches_unknown": counters["fetches_unknown"],
            "fetches_rejected": counters["fetches_rejected"],
            "fetches_after_terminal": counters["fetches_after_terminal"],
            "fetches_after_terminal_per_job": {
                str(j.id): j.fetches_after_terminal for j in self.jobs.values() if j.fetches_after_terminal
            },
            "faults": counters["faults"],
            "running": sum(1 for j in self.jobs.values() if j.outcome(now) is None),
            "file_requests": counters["file_requests"],
            "batch_submits": counters["batch_submits"],
            "batches_created": counters["batches_created"],
            "batch_fetches": counters["batch_fetches"],
            "batch_fetches_per_batch": {str(b.id): b.polls for b in self.batches.values()},
            "batch_refunds": counters["batch_refunds"],
            "requests": self.seq,
        }

    def requests_snapshot(self, since: int = 0) -> list[dict[str, Any]]:
        """Copy of the request log; ``since`` keeps only entries with a larger ``seq``."""
        return copy.deepcopy([entry for entry in self.log if entry["seq"] > since])


__all__ = [
    "ENDPOINTS",
    "PREFIXES",
    "START_ID",
    "Job",
    "Reply",
    "SimConfig",
    "SimState",
    "fingerprint",
    "redact",
]
