"""Video Batch requests, pure: inputs to entries, balanced chunks, track ids and every submit's body.

No I/O, no clock, no Airflow import; the package docstring lists what ModelsLab documents.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelslab_provider.client import core
from modelslab_provider.client.core import SECRET_FIELDS, ApiRequest, ClientSettings
from modelslab_provider.client.errors import ModelsLabConfigError

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

_TRACK_ID_MAX = 128
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


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


def derive_track_id(seed: str, index: int, prefix: str = "") -> str:
    """A deterministic track id for input ``index`` of a task (``seed`` names the task instance).

    The same task instance and input always get the same id, so a user can find an entry in the
    ModelsLab dashboard or a webhook log after an ambiguous failure; ``prefix`` (the DAG and
    task, unsafe characters replaced) keeps it readable there.
    """
    digest = hashlib.sha256(seed.encode()).hexdigest()[:16]
    readable = _UNSAFE.sub("_", prefix).strip("._-")[:60] or "airflow"
    return f"{readable}-{digest}-{index}"


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
    prefix: str = "",
) -> list[str]:
    """Each input's track id: its own, else ``defaults``', else the top-level one, else derived."""
    out: list[str] = []
    for i, entry in enumerate(entries):
        value = merged_entry(entry, defaults).get("track_id") or track_id or derive_track_id(seed, i, prefix)
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


def batch_track_ids(body: Mapping[str, Any]) -> str | None:
    """Every entry's ``track_id`` (else the batch's), comma-separated: what to look for after a failure."""
    top = body.get("track_id")
    entries = body.get("requests")
    entries = entries if isinstance(entries, list) else []
    ids = [e.get("track_id") or top for e in entries if isinstance(e, Mapping)]
    return ", ".join(str(i) for i in ids if i) or (str(top) if top else None)


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


# --------------------------------------------------------------------------- a task's submits


@dataclass(frozen=True)
class PlannedSubmit:
    """One paid call of a batch task: a batch of 3 to 20 entries, or one single-video request."""

    number: int
    kind: str  # "batch" or "single"
    endpoint: str
    body: Mapping[str, Any]
    offset: int
    size: int
    track_ids: tuple[str, ...]
    #: how log lines and errors name the submit, when not by its inputs ("request to text2video")
    label: str = ""

    @property
    def what(self) -> str:
        """The submit as a user reads it in a log line or an error."""
        if self.label:
            return self.label
        if self.kind == "batch":
            return f"batch for inputs {self.offset}..{self.offset + self.size - 1}"
        return f"request for input {self.offset}"

    def job(
        self, job_id: str, *, submitted_at: float, eta: float | None = None, fetch_url: str | None = None
    ) -> dict[str, Any]:
        """The JSON record of the accepted submit: trigger kwargs, ``task_state_store`` and results."""
        return {
            "id": job_id,
            "kind": self.kind,
            "endpoint": self.endpoint,
            "size": self.size,
            "offset": self.offset,
            "track_ids": list(self.track_ids),
            "track_id": self.track_ids[0] if self.kind == "single" else None,
            "api_version": core.V6,
            "fetch_url": fetch_url,
            "eta": eta,
            "submitted_at": submitted_at,
            "number": self.number,
        }


def plan_submits(
    model_id: str,
    entries: Sequence[Mapping[str, Any]],
    track_ids: Sequence[str],
    defaults: Mapping[str, Any] | None = None,
    *,
    track_id: str | None = None,
    webhook: str | None = None,
) -> list[PlannedSubmit]:
    """Every submit of a task, built and validated before the first one is paid for.

    3 or more inputs go to balanced batches; 1 or 2 to the model's full-price single endpoint
    (each entry merged with ``defaults``, since a single request has none).
    """
    if len(entries) >= BATCH_MIN:
        return [
            PlannedSubmit(
                plan.number,
                "batch",
                BATCH_PATH,
                build_batch_body(model_id, plan, defaults=defaults, track_id=track_id, webhook=webhook),
                plan.offset,
                plan.size,
                plan.track_ids,
            )
            for plan in plan_batches(entries, track_ids)
        ]
    model = check_model(model_id)
    out = []
    for i, (entry, tid) in enumerate(zip(entries, track_ids, strict=True)):
        endpoint = single_endpoint(model, entry)
        merged = merged_entry(entry, defaults)
        # checked before model_id is set: an entry naming another model is refused, as in a batch
        validate_entry(merged, i, model)
        body = {**merged, "model_id": model, "track_id": tid}
        if webhook:
            body["webhook"] = webhook
        out.append(PlannedSubmit(i, "single", endpoint, body, i, 1, (tid,)))
    return out
