"""Property-based tests: any response ModelsLab could send ends as a result or a typed error.

Arbitrary JSON, wrong types in every field and arbitrary bytes are fed to the response handling
shared by the sync and async clients. Nothing else may escape, and no URL that is not http(s)
may ever reach the caller (and from there XCom).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelslab_provider.client.core import SECRET_FIELDS, Status, VideoResult, parse_response
from modelslab_provider.client.errors import ModelsLabError

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
urlish = st.sampled_from(
    [
        "https://pub.r2.dev/video/a.mp4",
        "http://127.0.0.1:8765/files/b.mp4",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "ftp://host/x.mp4",
        "data:video/mp4;base64,AAAA",
        "//no-scheme.example/x.mp4",
        "https://",
        "",
        "   ",
        "https://host/with space.mp4",
    ]
)
field_values = json_values | urlish | st.lists(urlish | json_scalars, max_size=4)
statuses = (
    st.sampled_from(
        [
            "success",
            "processing",
            "queued",
            "pending",
            "error",
            "failed",
            "cancelled",
            "expired",
            "weird",
            "",
            "SUCCESS",
        ]
    )
    | json_scalars
)
fields = st.fixed_dictionaries(
    {"status": statuses},
    optional={
        name: field_values
        for name in (
            "id",
            "output",
            "proxy_links",
            "future_links",
            "eta",
            "message",
            "messege",
            "fetch_result",
            "meta",
            "generationTime",
            "retry_after",
            "request_id",
            "tip",
        )
    },
)
http_statuses = st.sampled_from(
    [200, 200, 200, 201, 400, 401, 402, 403, 404, 405, 408, 429, 500, 502, 503, 520, 524]
)


def _check(result: VideoResult) -> None:
    assert isinstance(result.status, Status)
    for url in (*result.urls, *result.output, *result.proxy_links, *result.future_links):
        assert urlsplit(url).scheme in ("http", "https"), url
        assert urlsplit(url).hostname
    if result.fetch_result is not None:
        assert urlsplit(result.fetch_result).scheme in ("http", "https")
    if result.status is Status.DONE:
        assert result.urls
    assert result.request_id is None or (isinstance(result.request_id, str) and result.request_id)
    assert result.eta is None or (isinstance(result.eta, float) and result.eta >= 0)
    json.dumps(result.details())  # XCom-ready
    assert not _has_secret_key(result.meta)


def _has_secret_key(value: Any) -> bool:
    if isinstance(value, dict):
        return any(str(k).strip().lower() in SECRET_FIELDS or _has_secret_key(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_secret_key(v) for v in value)
    return False


def _parse(status_code: int, body: bytes) -> None:
    try:
        result = parse_response(status_code, body)
    except ModelsLabError:
        return
    _check(result)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(http_statuses, fields)
def test_wrong_types_in_every_field(status_code: int, data: dict[str, Any]) -> None:
    _parse(status_code, json.dumps(data, allow_nan=True).encode())


@settings(max_examples=300, deadline=None)
@given(http_statuses, json_values)
def test_arbitrary_json_values(status_code: int, value: Any) -> None:
    _parse(status_code, json.dumps(value, allow_nan=True).encode())


@settings(max_examples=300, deadline=None)
@given(http_statuses, st.binary(max_size=300))
def test_arbitrary_bytes(status_code: int, body: bytes) -> None:
    _parse(status_code, body)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from([*sorted(SECRET_FIELDS), "Key", " KEY ", "prompt"]), json_values))
def test_secrets_never_survive_in_meta(meta: dict[str, Any]) -> None:
    body = json.dumps({"status": "processing", "meta": {"nested": meta, **meta}}).encode()
    result = parse_response(200, body)
    assert not _has_secret_key(result.meta)


def test_success_with_only_non_http_urls_is_not_done() -> None:
    body = json.dumps({"status": "success", "output": ["file:///etc/passwd", "ftp://x/y"]}).encode()
    result = parse_response(200, body)
    assert result.status is Status.RUNNING
    assert result.awaiting_links
    assert result.urls == ()
