"""The pure client core: settings, URLs, endpoints, ids, classification, secrets and the retry policy."""

from __future__ import annotations

import json

import pytest

from modelslab_provider.client import responses
from modelslab_provider.client.core import (
    ENDPOINTS,
    ClientSettings,
    Status,
    build_fetch,
    build_submit,
    build_wallet_balance,
    normalise_base_url,
    normalise_request_id,
    resolve_endpoint,
    strip_secrets,
)
from modelslab_provider.client.errors import (
    ModelsLabAuthError,
    ModelsLabConfigError,
    ModelsLabCreditsError,
    ModelsLabError,
    ModelsLabJobFailedError,
    ModelsLabNotFoundError,
    ModelsLabPlanError,
    ModelsLabRateLimitError,
    ModelsLabRequestError,
    ModelsLabTimeoutError,
    ModelsLabTransientError,
)
from modelslab_provider.client.policy import (
    LAST_POLL_LEAD,
    Action,
    PollPolicy,
    RetryPolicy,
    WaitTracker,
    never_reached,
    retry_delay,
)
from modelslab_provider.client.responses import normalise_response
from tests.unit.answers import parse_answer
from tests.unit.fresh_import import loaded_after_import

KEY = "sk-core-test-9f8e7d6c5b4a"
SETTINGS = ClientSettings(api_key=KEY)
URL = "https://pub.r2.dev/video_generations/x.mp4"


def body(data: object) -> bytes:
    return json.dumps(data).encode()


# --------------------------------------------------------------------------- status classification


@pytest.mark.parametrize(
    ("status_code", "data", "error"),
    [
        (200, {"status": "error", "message": "Invalid API key"}, ModelsLabAuthError),
        (200, {"status": "error", "message": "API key required"}, ModelsLabAuthError),
        (401, {"status": "error", "message": "Unauthorized"}, ModelsLabAuthError),
        (403, {"status": "error", "message": "Plan does not include this feature"}, ModelsLabPlanError),
        (
            200,
            {"status": "error", "message": "Insufficient credits. Please add more credits."},
            ModelsLabCreditsError,
        ),
        (402, {"status": "error", "message": "Payment Required"}, ModelsLabCreditsError),
        (200, {"status": "error", "message": "Request not found"}, ModelsLabNotFoundError),
        (404, {"status": "error", "message": "Video not found"}, ModelsLabNotFoundError),
        (400, {"status": "error", "message": "prompt is required"}, ModelsLabRequestError),
        (422, {"detail": "bad"}, ModelsLabRequestError),
    ],
)
def test_errors_about_the_call_raise_typed_errors(status_code: int, data: dict, error: type) -> None:
    with pytest.raises(error) as exc_info:
        parse_answer(status_code, body(data))
    assert not exc_info.value.retryable


def test_job_failures_are_results_not_exceptions() -> None:
    result = parse_answer(200, body({"status": "failed", "id": 7, "message": "Processing failed: oom"}))
    assert result.status is Status.FAILED
    assert result.is_terminal
    assert result.request_id == "7"
    assert result.message == "Processing failed: oom"


def test_done_running_and_details() -> None:
    done = parse_answer(
        200,
        body(
            {
                "status": "success",
                "id": 150000001,
                "output": [URL],
                "generationTime": 4.49,
                "meta": {"id": "150000001", "prompt": "a cat", "key": KEY},
            }
        ),
    )
    assert done.status is Status.DONE
    assert done.urls == (URL,)
    assert done.generation_time == pytest.approx(4.49)
    assert done.details()["meta"] == {"id": "150000001", "prompt": "a cat"}
    running = parse_answer(200, body({"status": "processing", "eta": 12, "output": ""}))
    assert running.status is Status.RUNNING
    assert running.eta == 12.0
    assert not running.unknown_status


@pytest.mark.parametrize(
    ("status_code", "raw", "ambiguous"),
    [
        # issue 11: any 5xx may come after the origin queued the job (a gateway's answer)
        (500, b"<html>oops</html>", True),
        (502, b"", True),
        (503, b'{"status":"error"}', True),
        (524, b"<html>A timeout occurred</html>", True),
        (408, b"", True),
        (200, b"[1, 2]", True),
        (200, b'"just a string"', True),
        (200, b"\xff\xfe garbage", True),
    ],
)
def test_transient_responses_and_whether_they_may_have_reached_modelslab(
    status_code: int, raw: bytes, ambiguous: bool
) -> None:
    with pytest.raises(ModelsLabTransientError) as exc_info:
        parse_answer(status_code, raw)
    assert exc_info.value.ambiguous is ambiguous
    assert exc_info.value.status_code == status_code


@pytest.mark.parametrize(
    ("status_code", "raw"), [(401, b"<html>Unauthorized</html>"), (403, b""), (400, b"Bad Request")]
)
def test_non_json_4xx_bodies_are_not_retried(status_code: int, raw: bytes) -> None:
    with pytest.raises(ModelsLabError) as exc_info:
        parse_answer(status_code, raw)
    assert not exc_info.value.retryable
    assert str(status_code) in str(exc_info.value)


def test_rate_limit_header_hours_and_cap() -> None:
    with pytest.raises(ModelsLabRateLimitError) as exc_info:
        parse_answer(200, body({"status": "error", "message": "Limit reached, try again in 1 hour"}))
    assert exc_info.value.retry_after == 3600.0
    with pytest.raises(ModelsLabRateLimitError) as exc_info:
        parse_answer(429, body({"status": "error", "message": "slow down"}), retry_after_header="7")
    assert exc_info.value.retry_after == 7.0
    # retry_after in the body wins over the header
    with pytest.raises(ModelsLabRateLimitError) as exc_info:
        parse_answer(429, body({"status": "error", "retry_after": 30}), retry_after_header="7")
    assert exc_info.value.retry_after == 30.0


# --------------------------------------------------------------------------- request ids


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (150000001, "150000001"),
        (150000001.0, "150000001"),
        (" 42 ", "42"),
        ("42.0", "42"),
        ("abc-123", "abc-123"),
    ],
)
def test_request_id_normalisation(value: object, expected: str) -> None:
    assert normalise_request_id(value) == expected


@pytest.mark.parametrize(
    "value", [None, True, 1.5, "", "  ", "12 34", "../etc/passwd", "1/2", {"id": 1}, "9" * 200]
)
def test_bad_request_ids_name_request_id(value: object) -> None:
    with pytest.raises(ModelsLabConfigError, match="request_id"):
        normalise_request_id(value)


def test_bad_request_id_fails_before_any_url_is_built() -> None:
    with pytest.raises(ModelsLabConfigError, match="request_id"):
        build_fetch(SETTINGS, "{{ ti.xcom_pull('missing') }}")


# --------------------------------------------------------------------------- endpoints


@pytest.mark.parametrize(
    ("name", "version", "path"),
    [
        ("text2video", "v6", "api/v6/video/text2video"),
        ("img2video", "v6", "api/v6/video/img2video"),
        ("text2video_ultra", "v6", "api/v6/video/text2video_ultra"),
        ("img2video_ultra", "v6", "api/v6/video/img2video_ultra"),
        ("v6/text2video", "v6", "api/v6/video/text2video"),
        ("/api/v6/video/img2video/", "v6", "api/v6/video/img2video"),
        ("text-to-video", "v7", "api/v7/video-fusion/text-to-video"),
        ("v7/image-to-video", "v7", "api/v7/video-fusion/image-to-video"),
        ("video-fusion/lip-sync", "v7", "api/v7/video-fusion/lip-sync"),
        ("v7/video-fusion/motion-control", "v7", "api/v7/video-fusion/motion-control"),
        ("api/v7/video-fusion/text-to-video", "v7", "api/v7/video-fusion/text-to-video"),
    ],
)
def test_endpoint_resolution(name: str, version: str, path: str) -> None:
    assert resolve_endpoint(name) == (version, path)


@pytest.mark.parametrize("name", ["text2image", "v7/text2video_v2", "", "fetch/1"])
def test_unknown_endpoint_lists_the_known_ones(name: str) -> None:
    with pytest.raises(ModelsLabConfigError) as exc_info:
        resolve_endpoint(name)
    if name:
        text = str(exc_info.value)
        assert repr(name) in text
        assert all(known in text for known in ENDPOINTS)


@pytest.mark.parametrize("name", ["v6/text-to-video", "api/v6/video/text-to-video", "v7/text2video"])
def test_endpoint_of_the_wrong_version_is_refused(name: str) -> None:
    with pytest.raises(ModelsLabConfigError, match="belongs to API"):
        resolve_endpoint(name)


# --------------------------------------------------------------------------- base URL


@pytest.mark.parametrize(
    ("host", "base"),
    [
        (None, "https://modelslab.com"),
        ("", "https://modelslab.com"),
        ("modelslab.com", "https://modelslab.com"),
        ("https://modelslab.com/", "https://modelslab.com"),
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("localhost:9000", "http://localhost:9000"),
        ("[::1]:9000", "http://[::1]:9000"),
        ("enterprise.example.com:8443", "https://enterprise.example.com:8443"),
        ("https://proxy.example.com/modelslab/", "https://proxy.example.com/modelslab"),
    ],
)
def test_base_url_scheme_and_port_are_honoured(host: str | None, base: str) -> None:
    assert normalise_base_url(host) == base
    settings = ClientSettings(api_key=KEY, base_url=host or "")
    assert build_fetch(settings, 5).url == f"{base}/api/v6/video/fetch/5"
    assert build_wallet_balance(settings).url == f"{base}/api/wallet_balance"


@pytest.mark.parametrize(
    ("host", "words"),
    [
        ("http://", "no host"),
        ("https:///api", "no host"),
        ("ftp://modelslab.com", "http:// or https://"),
        ("https://user:pw@modelslab.com", "credentials"),
        ("https://modelslab.com/?key=x", "query"),
        ("http://127.0.0.1:99999", "port"),
    ],
)
def test_bad_base_url_names_the_field(host: str, words: str) -> None:
    with pytest.raises(ModelsLabConfigError) as exc_info:
        ClientSettings(api_key=KEY, base_url=host)
    assert words in str(exc_info.value)
    assert "Base URL" in str(exc_info.value) or "base URL" in str(exc_info.value)


@pytest.mark.parametrize("key", ["", "   ", None])
def test_empty_key_is_a_config_error(key: object) -> None:
    with pytest.raises(ModelsLabConfigError, match="password"):
        ClientSettings(api_key=key)  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", [0, -1, 601, float("nan"), "30"])
def test_timeout_must_be_a_sane_number(timeout: object) -> None:
    with pytest.raises(ModelsLabConfigError, match="timeout"):
        ClientSettings(api_key=KEY, timeout=timeout)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- secrets


def test_strip_secrets_at_any_depth() -> None:
    meta = {
        "prompt": "a cat",
        "key": KEY,
        "API_KEY": KEY,
        "nested": {"Token": "t", "keep": [1, {"password": "p", "ok": True}]},
        "obj": object(),
    }
    stripped = strip_secrets(meta)
    assert KEY not in json.dumps(stripped)
    assert stripped["nested"] == {"keep": [1, {"ok": True}]}
    assert stripped["prompt"] == "a cat"
    assert isinstance(stripped["obj"], str)
    assert meta["key"] == KEY  # a copy: the input is untouched


def test_echoed_meta_loses_its_key() -> None:
    result = normalise_response(
        {"status": "processing", "id": 1, "meta": {"key": KEY, "prompt": "x", "webhook": None}}
    )
    assert "key" not in result.meta
    assert KEY not in json.dumps(result.details())


def test_key_is_only_ever_in_the_body() -> None:
    requests = [
        build_submit(SETTINGS, "text2video", {"prompt": "a cat"}),
        build_fetch(SETTINGS, 1, fetch_url="https://modelslab.com/api/v6/video/fetch/1"),
        build_wallet_balance(SETTINGS),
    ]
    for request in requests:
        assert request.body["key"] == KEY
        assert json.loads(request.encoded_body())["key"] == KEY
        assert KEY not in request.url
        assert KEY not in repr(request)
    assert KEY not in repr(SETTINGS)
    assert KEY not in str(SETTINGS)


def test_errors_never_carry_the_key() -> None:
    attempts = [
        lambda: build_submit(SETTINGS, "text2video", {"prompt": "x", "key": KEY}),
        lambda: build_submit(SETTINGS, "text2video", {"prompt": "x", "api_key": KEY}),
        lambda: build_submit(SETTINGS, "nope", {"prompt": KEY}),
        lambda: ClientSettings(api_key=KEY, base_url="ftp://x"),
        lambda: ClientSettings(api_key=KEY, timeout=0),
        lambda: normalise_response({"status": "error", "message": "Invalid API key"}, status_code=401),
    ]
    for attempt in attempts:
        with pytest.raises(ModelsLabError) as exc_info:
            attempt()
        assert KEY not in str(exc_info.value)
        assert KEY not in repr(exc_info.value)


def test_payload_with_a_key_is_refused_by_name() -> None:
    with pytest.raises(ModelsLabConfigError, match=r"\['key'\]"):
        build_submit(SETTINGS, "text2video", {"prompt": "x", "key": "other"})


# --------------------------------------------------------------------------- fetch_result origin


@pytest.mark.parametrize(
    "fetch_result",
    [
        "https://evil.example.com/api/v6/video/fetch/1",
        "http://modelslab.com/api/v6/video/fetch/1",
        "https://modelslab.com:8443/api/v6/video/fetch/1",
        "https://modelslab.com.evil.com/api/v6/video/fetch/1",
        "https://modelslab.com/api/v6/video/fetch/1?redirect=https://evil.example.com",
        "javascript:alert(1)",
        "not a url",
    ],
)
def test_fetch_result_from_another_origin_is_ignored(fetch_result: str) -> None:
    request = build_fetch(SETTINGS, 1, fetch_url=fetch_result)
    assert request.url == "https://modelslab.com/api/v6/video/fetch/1"


def test_fetch_result_on_our_origin_with_explicit_default_port_is_used() -> None:
    settings = ClientSettings(api_key=KEY, base_url="http://127.0.0.1:8765")
    url = "http://127.0.0.1:8765/api/v7/video-fusion/fetch/9"
    assert build_fetch(settings, 9, fetch_url=url).url == url
    url = "https://MODELSLAB.com:443/api/v6/video/fetch/9"
    assert build_fetch(ClientSettings(api_key=KEY), 9, fetch_url=url).url == url


@pytest.mark.parametrize(
    "fetch_url",
    [
        "https://modelslab.com/api/x/9",  # same origin, undocumented path
        "https://modelslab.com/api/v6/wallet_balance",
        "https://modelslab.com/api/v6/video/fetch/10",  # another request's id
        "https://modelslab.com/api/v6/video/fetch/9?debug=1",
        "https://modelslab.com/api/v6/video/text2video",
    ],
)
def test_only_documented_fetch_paths_of_the_request_are_used(fetch_url: str) -> None:
    """Issue 11.11: the key goes only to v6/v7 ``fetch/{id}`` of this request on our origin."""
    assert build_fetch(ClientSettings(api_key=KEY), 9, fetch_url=fetch_url).url == (
        "https://modelslab.com/api/v6/video/fetch/9"
    )


def test_unknown_api_version_is_a_config_error() -> None:
    with pytest.raises(ModelsLabConfigError, match="api_version"):
        build_fetch(SETTINGS, 1, "v8")


# --------------------------------------------------------------------------- retry policy


def test_ambiguous_submit_failures_are_never_retried() -> None:
    policy = RetryPolicy(max_attempts=5)
    dropped = ModelsLabTransientError("connection reset", ambiguous=True)
    assert policy.delay(1, dropped, idempotent=False, jitter=0.5) is None
    assert policy.delay(1, dropped, idempotent=True, jitter=0.5) is not None
    refused = ModelsLabTransientError("connection refused", ambiguous=False)
    assert policy.delay(1, refused, idempotent=False, jitter=0.5) is not None


@pytest.mark.parametrize(
    "error",
    [
        ModelsLabAuthError("bad key"),
        ModelsLabRequestError("bad request"),
        ModelsLabNotFoundError("gone"),
        ModelsLabConfigError("bad config"),
        ModelsLabJobFailedError("failed"),
        RuntimeError("not ours"),
    ],
)
def test_non_transient_errors_are_not_retried(error: BaseException) -> None:
    assert RetryPolicy().delay(1, error, idempotent=True, jitter=0.0) is None


def test_backoff_is_capped_jittered_and_attempts_are_limited() -> None:
    policy = RetryPolicy(max_attempts=8, initial_delay=1.0, max_delay=10.0)
    error = ModelsLabTransientError("502")
    lows = [policy.delay(a, error, idempotent=True, jitter=0.0) for a in range(1, 8)]
    highs = [policy.delay(a, error, idempotent=True, jitter=0.999) for a in range(1, 8)]
    assert lows == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert all(h is not None and lo is not None and lo < h <= 10.0 for lo, h in zip(lows, highs, strict=True))
    assert policy.delay(8, error, idempotent=True, jitter=0.0) is None


def test_retry_after_is_honoured_and_capped() -> None:
    policy = RetryPolicy(max_attempts=3, max_delay=5.0, max_retry_after=60.0)
    assert (
        policy.delay(1, ModelsLabRateLimitError("slow", retry_after=30), idempotent=False, jitter=0.0) == 30.0
    )
    assert (
        policy.delay(1, ModelsLabRateLimitError("slow", retry_after=3600), idempotent=False, jitter=0.0)
        == 60.0
    )
    # without a hint a rate limit backs off like any transient failure
    assert policy.delay(1, ModelsLabRateLimitError("slow"), idempotent=False, jitter=0.0) == 0.5


def test_retry_delay_logs_the_retry_or_gives_up_before_the_deadline(caplog: pytest.LogCaptureFixture) -> None:
    """One decision for both transports: retry, or raise when the policy or the deadline says no."""
    fetch = build_fetch(SETTINGS, 7)
    policy = RetryPolicy(max_attempts=3, initial_delay=2.0)
    blip = ModelsLabTransientError("502")
    with caplog.at_level("WARNING", logger="modelslab_provider.client.policy"):
        assert retry_delay(policy, 1, blip, fetch, 0.0, now=100.0, deadline=200.0) == 1.0
    assert "retry 1 of 2 in 1.0 s" in caplog.text
    assert KEY not in caplog.text
    with pytest.raises(ModelsLabTransientError) as exc_info:
        retry_delay(policy, 1, blip, fetch, 0.0, now=199.5, deadline=200.0)  # no retry could start in time
    assert exc_info.value is blip
    with pytest.raises(ModelsLabTransientError):
        retry_delay(policy, 3, blip, fetch, 0.0)  # attempts used up
    with pytest.raises(ModelsLabTransientError):  # a paid call that may have reached ModelsLab
        retry_delay(
            policy,
            1,
            ModelsLabTransientError("reset", ambiguous=True),
            build_submit(SETTINGS, "text2video", {}),
            0.0,
        )


def test_read_answer_scrubs_the_key_and_refuses_redirects() -> None:
    fetch = build_fetch(SETTINGS, 7)
    echoed = json.dumps({"status": "processing", "message": f"key {KEY} seen"}).encode()
    data = responses.read_answer(fetch, 200, echoed, None, KEY)
    assert KEY not in json.dumps(data)
    with pytest.raises(ModelsLabError, match="redirected") as exc_info:
        responses.read_answer(fetch, 302, b"", None, KEY)
    assert KEY not in str(exc_info.value)
    with pytest.raises(ModelsLabRateLimitError) as limited:
        responses.read_answer(fetch, 429, b"", "9", KEY)
    assert limited.value.retry_after == 9.0


def test_transport_failures_say_whether_the_call_may_have_reached_modelslab() -> None:
    refused = responses.not_connected(ConnectionRefusedError("[Errno 111] refused"))
    assert "Could not connect" in str(refused)
    assert never_reached(refused)
    assert not never_reached(responses.no_answer(5.0))
    assert not never_reached(responses.connection_lost(ConnectionResetError("reset by peer")))
    assert "within 5 s" in str(responses.no_answer(5.0))


def test_the_client_package_exports_only_public_names() -> None:
    import modelslab_provider.client as client
    from modelslab_provider.client import errors

    assert all(not name.startswith("_") for name in client.__all__)
    assert all(getattr(client, name) is not None for name in client.__all__)
    error_classes = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, ModelsLabError)
    }
    assert error_classes <= set(client.__all__)
    assert {"SubmittedRequest", "ModelsLabAmbiguousSubmitError", "normalise_response"} <= set(client.__all__)
    assert not {"parse_response", "normalise", "retry_delay", "describe_exception"} & set(dir(client))


def test_the_async_client_imports_neither_the_sync_client_nor_requests() -> None:
    loaded = loaded_after_import(
        "modelslab_provider.client.aio", ("modelslab_provider.client.sync", "requests")
    )
    assert loaded == []


# --------------------------------------------------------------------------- wait tracker


def test_wait_tracker_never_fails_on_transient_errors_only_at_the_deadline() -> None:
    tracker = WaitTracker(request_id="5", started_at=0.0, deadline=100.0, poll=PollPolicy(min_interval=1))
    for now in (1.0, 10.0, 50.0, 98.5):
        decision = tracker.on_error(ModelsLabTransientError("502"), now, jitter=0.5)
        assert decision.action is Action.WAIT
        # the last poll comes LAST_POLL_LEAD before the deadline, never at or after it
        assert 0 < decision.delay <= 100.0 - LAST_POLL_LEAD - now
    decision = tracker.on_error(ModelsLabTransientError("502"), 100.0 - LAST_POLL_LEAD)
    assert decision.action is Action.FAIL
    assert isinstance(decision.error, ModelsLabTimeoutError)
    assert "5" in str(decision.error)


def test_wait_tracker_fails_at_once_on_terminal_errors_and_failed_jobs() -> None:
    tracker = WaitTracker(request_id="5", started_at=0.0)
    assert tracker.on_error(ModelsLabAuthError("bad key"), 1.0).action is Action.FAIL
    failed = tracker.on_result(normalise_response({"status": "failed", "messege": "oom"}), 2.0)
    assert failed.action is Action.FAIL
    assert isinstance(failed.error, ModelsLabJobFailedError)
    assert "oom" in str(failed.error)
    done = tracker.on_result(normalise_response({"status": "success", "output": [URL]}), 3.0)
    assert done.action is Action.DONE
    assert done.result is not None
    assert done.result.urls == (URL,)


def test_balance_parsing() -> None:
    assert str(
        responses.parse_balance({"status": "success", "data": {"balance": 43.6, "currency": "USD"}})
    ) == ("43.60 USD")
    assert str(responses.parse_balance({"status": "success"})) == "unknown balance"


@pytest.mark.parametrize(
    ("status_code", "data", "error"),
    [
        (200, {"status": "error", "message": "Invalid API key"}, ModelsLabAuthError),
        (401, {"status": "error", "message": "Unauthorized"}, ModelsLabAuthError),
        (200, {"status": "error", "message": "try again in 5 seconds"}, ModelsLabRateLimitError),
        (200, {"status": "error", "message": "Something else"}, ModelsLabRequestError),
        (200, {"status": "processing"}, ModelsLabRequestError),
    ],
)
def test_a_refused_balance_call_is_never_a_balance(status_code: int, data: dict, error: type) -> None:
    """``test_connection`` must not report success for a key the API refused in a 200."""
    with pytest.raises(error):
        responses.parse_balance(data, status_code)
