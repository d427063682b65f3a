"""Property-based tests: any response ModelsLab could send ends as a result or a typed error.

Arbitrary JSON, wrong types in every field and arbitrary bytes are fed to the response handling
shared by the sync and async clients. Nothing else may escape, and no URL that is not http(s)
may ever reach the caller (and from there XCom).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelslab_provider.client.core import SECRET_FIELDS, Status, VideoResult
from modelslab_provider.client.errors import ModelsLabError
from tests.unit.answers import parse_answer


def scaled(examples: int, deep: int = 10) -> int:
    """``examples`` in the default profile, ``deep`` times as many with ``HYPOTHESIS_PROFILE=deep``.

    The deep factors keep ``make fuzz`` near 2.5 minutes on 2 shared cores while it generates
    well over 10,000 responses (the count is printed and checked in ``tests/conftest.py``).
    """
    return examples * (deep if settings().max_examples >= 1000 else 1)


def _count(responses: int = 1) -> None:
    from tests.conftest import FUZZ_RESPONSES

    FUZZ_RESPONSES[0] += responses


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
    _count()
    try:
        result = parse_answer(status_code, body)
    except ModelsLabError:
        return
    _check(result)


@settings(max_examples=scaled(400, deep=6), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(http_statuses, fields)
def test_wrong_types_in_every_field(status_code: int, data: dict[str, Any]) -> None:
    _parse(status_code, json.dumps(data, allow_nan=True).encode())


@settings(max_examples=scaled(300), deadline=None)
@given(http_statuses, json_values)
def test_arbitrary_json_values(status_code: int, value: Any) -> None:
    _parse(status_code, json.dumps(value, allow_nan=True).encode())


@settings(max_examples=scaled(300, deep=15), deadline=None)
@given(http_statuses, st.binary(max_size=300))
def test_arbitrary_bytes(status_code: int, body: bytes) -> None:
    _parse(status_code, body)


@settings(max_examples=scaled(200, deep=1), deadline=None)
@given(st.dictionaries(st.sampled_from([*sorted(SECRET_FIELDS), "Key", " KEY ", "prompt"]), json_values))
def test_secrets_never_survive_in_meta(meta: dict[str, Any]) -> None:
    body = json.dumps({"status": "processing", "meta": {"nested": meta, **meta}}).encode()
    result = parse_answer(200, body)
    assert not _has_secret_key(result.meta)


def test_success_with_only_non_http_urls_is_not_done() -> None:
    body = json.dumps({"status": "success", "output": ["file:///etc/passwd", "ftp://x/y"]}).encode()
    result = parse_answer(200, body)
    assert result.status is Status.RUNNING
    assert result.awaiting_links
    assert result.urls == ()


# --------------------------------------------------------------------------- the XCom path of deferred waits
# A deferred sensor or operator gets its URLs from the trigger's event through
# ``urls_from_event``; whatever the event holds, only http(s) URLs may come out of it.

CANARY = "sk-canary-fuzz-3b8e"
event_urls = st.lists(urlish | json_scalars, max_size=4) | json_values
events = st.fixed_dictionaries(
    {"status": st.sampled_from(["success", "failed", "timeout", "error", "weird"]) | json_scalars},
    optional={
        "urls": event_urls,
        "request_id": json_scalars,
        "message": json_scalars,
        "error_type": st.sampled_from(["auth", "api", "unexpected", "not_found"]) | json_scalars,
    },
)


def _check_urls_from_event(event: Any) -> None:
    from airflow.providers.common.compat.sdk import AirflowException

    from modelslab_provider.triggers.video import urls_from_event

    try:
        urls = urls_from_event(event, conn_id="modelslab_default")
    except AirflowException:
        return
    assert isinstance(urls, list)
    assert urls
    for url in urls:
        assert isinstance(url, str)
        assert urlsplit(url).scheme in ("http", "https"), url
        assert urlsplit(url).hostname, url


@settings(max_examples=scaled(300, deep=1), deadline=None)
@given(events | json_values)
def test_event_urls_are_http_only(event: Any) -> None:
    _check_urls_from_event(event)


def test_event_with_a_file_url_is_refused() -> None:
    """Found by ``test_event_urls_are_http_only``: a ``file://`` URL in an event reached XCom."""
    from airflow.providers.common.compat.sdk import AirflowFailException

    from modelslab_provider.triggers.video import urls_from_event

    event = {
        "status": "success",
        "request_id": "1",
        "urls": ["https://ok.example/a.mp4", "file:///etc/passwd"],
    }
    with pytest.raises(AirflowFailException, match="without output URLs"):
        urls_from_event(event, conn_id="modelslab_default")


class _FakeClient:
    """Stands in for ``AsyncModelsLabClient``: each fetch parses the next fuzzed response."""

    def __init__(self, responses: list[tuple[int, bytes]]) -> None:
        from modelslab_provider.client.core import ClientSettings
        from modelslab_provider.client.policy import RetryPolicy

        self.settings = ClientSettings(api_key=CANARY, base_url="https://modelslab.com")
        self.retry = RetryPolicy(initial_delay=0.001, max_delay=0.001, max_retry_after=0.001)
        self._responses = iter(responses)

    async def __aenter__(self) -> _FakeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def fetch(
        self, request_id: Any, api_version: str = "v6", fetch_url: str | None = None
    ) -> VideoResult:
        from modelslab_provider.client.errors import ModelsLabNotFoundError

        try:
            status_code, body = next(self._responses)
        except StopIteration:
            raise ModelsLabNotFoundError("no more fuzzed responses") from None
        return parse_answer(status_code, body)


def _bodies() -> st.SearchStrategy[bytes]:
    as_json = (fields | json_values).map(lambda v: json.dumps(v, allow_nan=True).encode())
    return as_json | as_json | st.binary(max_size=200)


@settings(max_examples=scaled(150, deep=2), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(http_statuses, _bodies()), min_size=1, max_size=8))
def test_trigger_events_from_fuzzed_responses(responses: list[tuple[int, bytes]]) -> None:
    """Fuzzed fetch answers through ``VideoFetchTrigger.run``: one JSON event, no key, http(s) URLs."""
    _count(len(responses))
    import asyncio
    import types
    from unittest import mock

    from modelslab_provider.hooks.modelslab import ModelsLabHook
    from modelslab_provider.triggers import video
    from modelslab_provider.triggers.video import EVENT_STATUSES, VideoFetchTrigger

    async def no_wait(_delay: float) -> None:
        await asyncio.sleep(0)

    async def fake_client(_hook: Any) -> _FakeClient:
        return _FakeClient(responses)

    async def collect() -> list[Any]:
        trigger = VideoFetchTrigger(request_id="150000001")
        return [event async for event in trigger.run()]

    fast_asyncio = types.SimpleNamespace(sleep=no_wait, timeout=asyncio.timeout)
    with (
        mock.patch.object(video, "asyncio", fast_asyncio),
        mock.patch.object(ModelsLabHook, "aget_client", fake_client),
    ):
        fired = asyncio.run(collect())
    assert len(fired) == 1
    payload = fired[0].payload
    assert payload["status"] in EVENT_STATUSES
    text = json.dumps(payload)  # a trigger event must serialise as JSON
    assert CANARY not in text
    _check_urls_from_event(payload)
    if payload["status"] == "success":
        assert all(urlsplit(u).scheme in ("http", "https") for u in payload["details"]["output"])


# --------------------------------------------------------------------------- an API that echoes the key
# ModelsLab is not known to echo the key, but if a message, a URL or ``meta`` ever carried it, the
# transports must not pass it on into a result, an error text, a log line or XCom.


class _Response:
    def __init__(self, status: int, body: bytes) -> None:
        self.status_code = self.status = status
        self.content = body
        self.headers: dict[str, str] = {}

    async def read(self) -> bytes:
        return self.content

    async def __aenter__(self) -> _Response:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class _Session:
    """Enough of ``requests.Session`` and ``aiohttp.ClientSession`` to answer one canned response."""

    def __init__(self, status: int, body: bytes) -> None:
        self.response = _Response(status, body)
        self.closed = False

    def request(self, *args: Any, **kwargs: Any) -> _Response:
        return self.response

    def close(self) -> None:
        self.closed = True


def _echoing(value: Any, secret: str, spots: list[int]) -> Any:
    """``value`` with the key spliced into some of its strings (by position in a walk)."""
    counter = iter(range(10_000))

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return f"{v}{secret}" if next(counter) in spots else v
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        return v

    return walk(value)


echo_fields = st.fixed_dictionaries(
    {"status": st.sampled_from(["success", "processing", "error", "failed", "weird"])},
    optional={
        "id": st.just(150000001),
        "message": st.sampled_from(
            ["Invalid API key: ", "try again in 3 seconds ", "Request not found ", ""]
        ),
        "messege": st.text(max_size=10),
        "output": st.lists(st.sampled_from(["https://pub.r2.dev/a.mp4?token=", "https://cdn.example/b.mp4"])),
        "proxy_links": st.lists(st.just("https://proxy.example/c.mp4?sig=")),
        "fetch_result": st.sampled_from(
            ["https://modelslab.com/api/v6/video/fetch/150000001?key=", "https://modelslab.com/x/"]
        ),
        "meta": st.dictionaries(st.sampled_from(["prompt", "note", "webhook"]), st.text(max_size=10)),
        "tip": st.text(max_size=10),
    },
)


@settings(max_examples=scaled(200, deep=2), deadline=None)
@given(
    st.sampled_from([200, 200, 400, 401, 402, 404, 429, 500, 503]),
    echo_fields,
    st.lists(st.integers(0, 12), min_size=1, max_size=4),
    st.booleans(),
)
def test_an_echoed_key_never_leaves_the_transports(
    status_code: int, data: dict[str, Any], spots: list[int], use_async: bool
) -> None:
    import asyncio

    from modelslab_provider.client.aio import AsyncModelsLabClient
    from modelslab_provider.client.core import ClientSettings
    from modelslab_provider.client.policy import RetryPolicy
    from modelslab_provider.client.sync import ModelsLabClient

    _count()
    body = json.dumps(_echoing(data, CANARY, spots)).encode()
    settings_ = ClientSettings(api_key=CANARY, base_url="https://modelslab.com", max_retries=1)
    session = _Session(status_code, body)
    seen: list[str] = []
    try:
        if use_async:
            aclient = AsyncModelsLabClient(settings_, retry=RetryPolicy(max_attempts=1), session=session)  # type: ignore[arg-type]
            result = asyncio.run(aclient.fetch("150000001"))
        else:
            client = ModelsLabClient(settings_, retry=RetryPolicy(max_attempts=1), session=session)  # type: ignore[arg-type]
            result = client.fetch("150000001")
    except ModelsLabError as exc:
        seen.append(str(exc))
        seen.append(repr(exc.args))
    else:
        seen.append(json.dumps(result.details()))
        seen.append(repr(result))
    assert not any(CANARY in text for text in seen), seen
