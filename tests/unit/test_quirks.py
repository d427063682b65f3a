"""One test per row of the quirk table (API reference §7): each quirk is handled once, in the client core."""

from __future__ import annotations

import pytest

from modelslab_provider.client import core
from modelslab_provider.client.core import ClientSettings, Status, build_fetch, build_submit
from modelslab_provider.client.errors import (
    ModelsLabAuthError,
    ModelsLabRateLimitError,
    ModelsLabTransientError,
)
from modelslab_provider.client.policy import Action, PollPolicy, WaitTracker
from modelslab_provider.client.responses import normalise_response
from tests.unit.answers import parse_answer

KEY = "sk-quirk-test-0123456789"
SETTINGS = ClientSettings(api_key=KEY, base_url="https://modelslab.com")
FILE = "https://pub-3626123a908346a7a8be8d9295f44e26.r2.dev/video_generations/abc.mp4"
PROXY = "https://cdn2.stablediffusionapi.com/generations/abc.mp4"


def test_q1_integer_id_is_a_string_and_missing_id_comes_from_fetch_result() -> None:
    submitted = normalise_response(
        {"status": "processing", "id": 134799477, "meta": {"id": "134799477"}, "eta": 960, "output": []}
    )
    assert submitted.request_id == "134799477"
    float_id = normalise_response({"status": "processing", "id": 155262350.0})
    assert float_id.request_id == "155262350"
    meta_only = normalise_response({"status": "processing", "meta": {"id": "155918900"}})
    assert meta_only.request_id == "155918900"
    v7_no_id = normalise_response(
        {"status": "processing", "fetch_result": "https://modelslab.com/api/v7/video-fusion/fetch/155262350"}
    )
    assert v7_no_id.request_id == "155262350"
    assert v7_no_id.fetch_result == "https://modelslab.com/api/v7/video-fusion/fetch/155262350"


def test_q2_misspelt_messege_is_read_like_message() -> None:
    failed = normalise_response({"status": "failed", "messege": "Processing failed: out of GPUs"})
    assert failed.status is Status.FAILED
    assert failed.message == "Processing failed: out of GPUs"
    running = normalise_response({"status": "processing", "messege": "try again later."})
    assert running.message == "try again later."
    # the fallbacks in order: message, messege, error
    assert normalise_response({"status": "failed", "error": "boom"}).message == "boom"
    assert normalise_response({"status": "failed", "message": "", "messege": "second"}).message == "second"


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("", ()),
        (FILE, (FILE,)),
        ([FILE, "", None, 3, "not a url", "ftp://x/y.mp4"], (FILE,)),
        ([FILE, FILE], (FILE,)),
        (None, ()),
    ],
)
def test_q3_output_string_or_list_becomes_a_tuple_of_http_urls(output: object, expected: tuple) -> None:
    result = normalise_response({"status": "processing", "output": output})
    assert result.output == expected


def test_q4_success_without_output_uses_proxy_then_future_links_else_waits_bounded() -> None:
    future_only = normalise_response({"status": "success", "output": [], "future_links": [FILE]})
    assert future_only.status is Status.DONE
    assert future_only.urls == (FILE,)
    proxy_first = normalise_response(
        {"status": "success", "output": "", "proxy_links": [PROXY], "future_links": [FILE]}
    )
    assert proxy_first.urls == (PROXY,)
    empty = normalise_response({"status": "success", "output": [], "future_links": []})
    assert empty.status is Status.RUNNING
    assert empty.awaiting_links
    assert not empty.is_terminal

    policy = PollPolicy(min_interval=1, max_empty_success_polls=3)
    tracker = WaitTracker(request_id="1", started_at=0.0, poll=policy)
    actions = [tracker.on_result(empty, now=float(i)).action for i in range(1, 5)]
    assert actions == [Action.WAIT, Action.WAIT, Action.WAIT, Action.FAIL]


def test_q5_success_is_done_at_once_and_the_core_never_downloads_the_file() -> None:
    """Files may 404 for seconds after success; retrying downloads is the downloading operator's job.

    The core reports the URLs as soon as they exist and keeps every list so a downloader can fall
    back to another copy; it never requests the file itself.
    """
    result = normalise_response(
        {"status": "success", "output": [FILE], "proxy_links": [PROXY], "future_links": [FILE]}
    )
    assert result.status is Status.DONE
    assert result.urls == (FILE,)
    assert result.details()["proxy_links"] == [PROXY]
    assert not hasattr(core, "download")


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("success", Status.DONE),
        ("completed", Status.DONE),
        ("processing", Status.RUNNING),
        ("queued", Status.RUNNING),
        ("pending", Status.RUNNING),
        ("starting", Status.RUNNING),
        ("error", Status.FAILED),
        ("failed", Status.FAILED),
        ("cancelled", Status.FAILED),
        ("canceled", Status.FAILED),
        ("expired", Status.FAILED),
        ("Processing", Status.RUNNING),
    ],
)
def test_q6_status_words_beyond_the_enum(word: str, status: Status) -> None:
    body = {
        "status": word,
        "output": [FILE],
        "message": "Generation failed" if status is Status.FAILED else "",
    }
    assert normalise_response(body).status is status


def test_q6_unknown_status_is_running_and_flagged_for_a_warning() -> None:
    result = normalise_response({"status": "weird_state", "message": "?"})
    assert result.status is Status.RUNNING
    assert result.unknown_status
    assert result.raw_status == "weird_state"
    # "state" instead of "status" is tolerated
    assert normalise_response({"state": "success", "output": [FILE]}).status is Status.DONE


@pytest.mark.parametrize(
    ("status_code", "body", "described"),
    [
        (502, b"<!DOCTYPE html><html><title>502 Bad gateway</title></html>", "HTML"),
        (520, b"<html><body>Cloudflare</body></html>", "HTML"),
        (200, b"", "empty"),
        (200, b'{"status": "processing", "mess', "not valid JSON"),
        (200, b"<html>maintenance</html>", "HTML"),
        (503, b"", "empty"),
    ],
)
def test_q7_non_json_bodies_are_transient(status_code: int, body: bytes, described: str) -> None:
    with pytest.raises(ModelsLabTransientError) as exc_info:
        parse_answer(status_code, body)
    assert exc_info.value.retryable
    assert described in str(exc_info.value)


def test_q8_error_in_an_http_200_is_checked_like_a_real_4xx() -> None:
    in_200 = normalise_response(
        {"status": "error", "message": "Generation failed: NSFW content"}, status_code=200
    )
    assert in_200.status is Status.FAILED
    assert in_200.message == "Generation failed: NSFW content"
    with pytest.raises(ModelsLabAuthError):
        normalise_response({"status": "error", "message": "Invalid API key"}, status_code=200)
    with pytest.raises(ModelsLabAuthError):
        normalise_response({"status": "error", "message": "Invalid API key"}, status_code=401)


@pytest.mark.parametrize(
    ("status_code", "body", "header", "wait"),
    [
        (
            429,
            b'{"status":"error","message":"Rate limit exceeded. Maximum 5 queued requests allowed.",'
            b'"retry_after":30}',
            None,
            30.0,
        ),
        (429, b"Too Many Requests", "12", 12.0),
        (429, b"", None, None),
        (200, b'{"status":"error","message":"Too many requests, try again in 20 seconds"}', None, 20.0),
        (200, b'{"status":"error","messege":"Queue full, try again in 2 minutes"}', None, 120.0),
        (200, b'{"status":"error","message":"Please try again in 1.5 sec"}', None, 1.5),
    ],
)
def test_q9_rate_limits_as_429_retry_after_header_or_free_text(
    status_code: int, body: bytes, header: str | None, wait: float | None
) -> None:
    with pytest.raises(ModelsLabRateLimitError) as exc_info:
        parse_answer(status_code, body, retry_after_header=header)
    assert exc_info.value.retry_after == wait
    assert exc_info.value.retryable
    assert not exc_info.value.ambiguous


def test_q10_float_tiny_and_huge_eta_shape_the_next_poll_within_bounds() -> None:
    assert normalise_response({"status": "processing", "eta": 416.94}).eta == pytest.approx(416.94)
    assert normalise_response({"status": "processing", "eta": "13.07"}).eta == pytest.approx(13.07)
    assert normalise_response({"status": "processing", "eta": -3}).eta is None
    policy = PollPolicy()
    tiny = policy.next_delay(elapsed=0, eta=0.25)
    huge = policy.next_delay(elapsed=0, eta=960)
    overrun = policy.next_delay(elapsed=5000, eta=960)
    assert tiny == policy.min_interval
    assert policy.min_interval <= huge <= policy.max_interval
    assert policy.min_interval <= overrun <= policy.max_interval


def test_q11_model_id_is_not_validated_client_side() -> None:
    request = build_submit(SETTINGS, "text2video", {"prompt": "a cat", "model_id": "no-such-model"})
    assert request.body["model_id"] == "no-such-model"
    # the v7 answer for an unknown model is a terminal failure with the API's text, not "request not found"
    result = normalise_response({"status": "error", "message": "Model not found: no-such-model"})
    assert result.status is Status.FAILED
    assert "no-such-model" in result.message


def test_q12_parameters_pass_through_unchanged() -> None:
    payload = {
        "prompt": "p",
        "shift_sample": 3,
        "sample_shift": 4,
        "fps": 18,
        "track_id ": "x",
        "extra": {"a": 1},
    }
    request = build_submit(SETTINGS, "text2video_ultra", payload)
    assert {k: v for k, v in request.body.items() if k != "key"} == payload


@pytest.mark.parametrize(
    "init_image", ["https://x.test/a.png", ["https://x.test/a.png", "https://x.test/b.png"]]
)
def test_q13_init_image_string_or_list_is_not_coerced(init_image: object) -> None:
    request = build_submit(
        SETTINGS, "v7/image-to-video", {"model_id": "kling-v1.6", "init_image": init_image}
    )
    assert request.body["init_image"] == init_image


def test_q14_fetch_uses_the_path_form_only() -> None:
    request = build_fetch(SETTINGS, 150000001)
    assert request.url == "https://modelslab.com/api/v6/video/fetch/150000001"
    assert set(request.body) == {"key"}
    assert request.method == "POST"
    assert build_fetch(SETTINGS, "150000001", "v7").url.endswith("/api/v7/video-fusion/fetch/150000001")


def test_q15_fetch_result_is_used_verbatim_on_our_origin() -> None:
    fetch_result = "https://modelslab.com/api/v7/video-fusion/fetch/150000001"
    request = build_fetch(SETTINGS, 150000001, "v6", fetch_url=fetch_result)
    assert request.url == fetch_result


def test_q16_proxy_links_on_another_host_are_kept_for_xcom() -> None:
    result = normalise_response(
        {"status": "success", "id": 1, "output": [FILE], "proxy_links": [PROXY], "future_links": [FILE]}
    )
    details = result.details()
    assert details["output"] == [FILE]
    assert details["proxy_links"] == [PROXY]
    assert details["future_links"] == [FILE]
