"""The paid submit's pure parts: request defaults, ``track_id``, fingerprint and the submit record.

No I/O and no Airflow: ``ModelsLabClient.submit_request`` and the operators build on these, and
so can any other paid call (e.g. a batch submit).
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from modelslab_provider.client.core import API_VERSIONS, V6, V7, resolve_endpoint, url_origin
from modelslab_provider.client.errors import ModelsLabAmbiguousSubmitError, ModelsLabConfigError

#: the model ModelsLab documents as the default of v6 ``text2video`` and ``img2video`` (its
#: OpenAPI marks ``model_id`` required there; unknown ids fall back to it)
DEFAULT_V6_MODEL = "wan2.2"
V6_MODEL_ENDPOINTS = frozenset({"api/v6/video/text2video", "api/v6/video/img2video"})

_TRACK_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_UNSAFE_RE = re.compile(r"[^A-Za-z0-9._-]+")


def prepare_payload(endpoint: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """``payload`` with the documented defaults filled in; a v7 call without ``model_id`` fails.

    v6 ``text2video`` / ``img2video`` get ``model_id`` ``wan2.2`` unless one is given. v7
    video-fusion has no default model: the request would be refused after the fact, so it is
    refused here, before anything is sent.
    """
    version, path = resolve_endpoint(endpoint)
    if not isinstance(payload, Mapping):
        raise ModelsLabConfigError(f"payload must be a dict of API parameters, got {type(payload).__name__}")
    body = dict(payload)
    model = body.get("model_id")
    missing = model is None or (isinstance(model, str) and not model.strip())
    if version == V6 and path in V6_MODEL_ENDPOINTS and missing:
        body["model_id"] = DEFAULT_V6_MODEL
    if version == V7 and missing:
        raise ModelsLabConfigError(
            f"model_id is required for the v7 video-fusion endpoint {endpoint!r}: pass model_id "
            "(e.g. model_id='veo-3.1'); the README's model table lists the common ones."
        )
    return body


class Default(enum.Enum):
    """An argument left at its default (an enum member survives Airflow's deepcopy as itself)."""

    TOKEN = 0


def image_urls(value: Any) -> bool:
    """True for one non-empty string or a non-empty list of them (``init_image`` on v7)."""
    images = value if isinstance(value, list) else [value]
    return bool(images) and all(isinstance(i, str) and i.strip() for i in images)


def typed_payload(
    endpoint: str,
    fields: Mapping[str, Any],
    parameters: Any = None,
    *,
    output_type: Any = Default.TOKEN,
    api_version: str | None = None,
) -> dict[str, Any]:
    """A request body from typed arguments: those set (not None or ""), then ``parameters``, which win.

    ``output_type`` left at its default is ``mp4`` on v6 (the API's own default is ``gif``) and
    left out on v7, whose models choose their format. An int ``duration`` goes to v7 as a string,
    as every v7 model page sends it (e.g. https://modelslab.com/models/google/Veo-3.1-fast/api).
    """
    version, _ = resolve_endpoint(endpoint)
    if api_version is not None and version != api_version:
        raise ModelsLabConfigError(
            f"endpoint {endpoint!r} is a {version} endpoint but api_version={api_version!r}; "
            "give one of them only."
        )
    if output_type is Default.TOKEN:
        output_type = "mp4" if version == V6 else None
    body = {k: v for k, v in {**fields, "output_type": output_type}.items() if v is not None and v != ""}
    duration = body.get("duration")
    if version == V7 and isinstance(duration, int) and not isinstance(duration, bool):
        body["duration"] = str(duration)
    if parameters is not None:
        if not isinstance(parameters, Mapping):
            raise ModelsLabConfigError(
                "parameters must be a dict of extra ModelsLab API parameters, "
                f"got {type(parameters).__name__}"
            )
        body.update(parameters)
    image = body.get("init_image")
    if image is not None and not image_urls(image):
        raise ModelsLabConfigError(
            f"init_image must be an image URL (or a non-empty list of URLs), got {image!r}"
        )
    return body


def ambiguous_submit_error(
    what: str, error: BaseException, track_id: str | None, *, resubmitted: bool = False
) -> ModelsLabAmbiguousSubmitError:
    """The error of a paid call that may have reached ModelsLab: what happened and what to look for."""
    then = (
        "It was sent again as often as the connection's max_retries allow "
        "(resubmit_on_ambiguous_failure), so it may have been paid for more than once."
        if resubmitted
        else "It is not sent again automatically, so the video is never paid for twice."
    )
    return ModelsLabAmbiguousSubmitError(
        f"The submission to ModelsLab ({what}) may or may not have been accepted: {error} {then} Look "
        f"for track_id {track_id or '(none)'} in your ModelsLab dashboard or webhook log; if there is "
        "no such request, clear this task to submit again.",
        track_id=track_id,
        endpoint=what,
    )


def make_track_id(dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> str:
    """A deterministic, URL-safe ``track_id`` (at most 64 characters) for one try of one task.

    Readable as ``dag.task.run.map.try``, unsafe characters replaced by ``_``, when that is
    short enough; otherwise a readable prefix plus a hash of all five parts.
    """
    parts = [str(dag_id), str(task_id), str(run_id), f"m{map_index}", f"t{try_number}"]
    plain = ".".join(parts)
    if _TRACK_ID_RE.match(plain):
        return plain
    # a UI run id ("manual__2026-12-06T10:00:00+00:00") stays readable with its ':' and '+' replaced
    safe = _UNSAFE_RE.sub("_", plain).strip("._-")
    if _TRACK_ID_RE.match(safe):
        return safe
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]
    prefix = _UNSAFE_RE.sub("_", f"{dag_id}.{task_id}").strip("._-")[:44]
    return f"{prefix}-{digest}" if prefix else digest


def request_fingerprint(base_url: str, endpoint: str, payload: Mapping[str, Any]) -> str:
    """What identifies "the same request": the server's origin, the endpoint and the payload.

    The origin (scheme, host, port; never the key) keeps a request stored against the simulator
    or another account's server from being reused against production.
    """
    scheme, host, port = url_origin(base_url)
    _, path = resolve_endpoint(endpoint)
    canonical = json.dumps(
        {"origin": f"{scheme}://{host}:{port}", "path": path, "payload": dict(payload)},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class SubmittedRequest:
    """A paid request ModelsLab accepted: what is needed to follow it, in this try or a later one."""

    request_id: str
    api_version: str
    fetch_url: str | None
    submitted_at: float
    eta: float | None
    fingerprint: str
    track_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for ``task_state_store`` (no key: nothing here ever holds it)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, value: Any) -> SubmittedRequest | None:
        """The stored request, or None when the store holds something this version cannot use."""
        if not isinstance(value, Mapping) or not isinstance(value.get("request_id"), str):
            return None
        if value.get("api_version") not in API_VERSIONS or not isinstance(value.get("fingerprint"), str):
            return None
        submitted_at, eta = value.get("submitted_at"), value.get("eta")
        fetch_url, track_id = value.get("fetch_url"), value.get("track_id")
        return cls(
            request_id=value["request_id"],
            api_version=value["api_version"],
            fetch_url=fetch_url if isinstance(fetch_url, str) else None,
            submitted_at=float(submitted_at) if isinstance(submitted_at, int | float) else time.time(),
            eta=float(eta) if isinstance(eta, int | float) and not isinstance(eta, bool) else None,
            fingerprint=value["fingerprint"],
            track_id=track_id if isinstance(track_id, str) else None,
        )
