"""The API key is scrubbed in every encoding a server could echo it in, wherever text is kept.

A real local server plays a ModelsLab that echoes the key raw, JSON-escaped, URL-encoded
(``quote`` and ``quote_plus``, upper- and lower-case hex) and base64 (standard and URL-safe, at
any offset inside a longer encoded text) in ``fetch_result``, ``message``, ``meta`` and an error
answer; nothing that reaches a result, an XCom value, an exception or a trigger event holds it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from pytest_httpserver import HTTPServer

from modelslab_provider.client.core import scrub_secret, scrub_text
from modelslab_provider.client.errors import ModelsLabError

#: a key with characters every encoding treats differently: / + = & % space and a non-ASCII one
KEY = "sk-Test/Key+With=Odd&Chars% é-0123456789abcdef"


def encodings(key: str) -> dict[str, str]:
    """Each way a server could write ``key`` into its answer."""
    raw = key.encode()
    forms = {
        "raw": key,
        "json": json.dumps(key)[1:-1],
        "json-ascii": json.dumps(key, ensure_ascii=True)[1:-1].replace("/", "\\/"),
        "quote": quote(key, safe=""),
        "quote-slash-safe": quote(key),
        "quote-lower-hex": re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(key, safe="")),
        "quote_plus": quote_plus(key),
        "base64": base64.b64encode(raw).decode(),
        "base64-urlsafe": base64.urlsafe_b64encode(raw).decode(),
        "base64-no-padding": base64.b64encode(raw).decode().rstrip("="),
    }
    for prefix in (b"k", b"ke", b"key", b"api_key="):  # the key inside a longer encoded text
        forms[f"base64-after-{prefix.decode()}"] = base64.b64encode(prefix + raw + b"&x=1").decode()
        forms[f"base64-url-after-{prefix.decode()}"] = base64.urlsafe_b64encode(prefix + raw).decode()
    return forms


def leaks(text: str) -> list[str]:
    """Which encodings of the key are still in ``text``: the raw key, or a base64 run of it."""
    found = [name for name, form in encodings(KEY).items() if not name.startswith("base64") and form in text]
    b64_core = base64.b64encode(KEY.encode()).decode()[:20]
    return found + (["base64"] if b64_core in text else [])


@pytest.mark.parametrize(("name", "form"), list(encodings(KEY).items()), ids=list(encodings(KEY)))
def test_every_encoding_of_the_key_is_scrubbed(name: str, form: str) -> None:
    body = f'{{"message": "bad request for {form} (echoed)"}}'.encode()
    scrubbed = scrub_secret(body, KEY).decode()
    assert "***" in scrubbed, name
    # what is left of the encoded form cannot be decoded back to the key
    for start in range(len(scrubbed)):
        for end in range(start + 8, min(len(scrubbed), start + 80) + 1):
            piece = scrubbed[start:end]
            for decode in (base64.b64decode, base64.urlsafe_b64decode):
                with contextlib.suppress(ValueError, TypeError):
                    assert KEY.encode()[:16] not in decode(piece + "=" * (-len(piece) % 4))
    for plain in (KEY, quote(KEY, safe=""), quote_plus(KEY)):
        assert plain not in scrubbed


def test_text_is_scrubbed_like_bodies_and_short_keys_get_no_base64_forms() -> None:
    assert scrub_text(f"see {quote_plus(KEY)} there", KEY) == "see *** there"
    assert scrub_text("nothing", None) == "nothing"
    assert scrub_text("abc YWJj abc", "abc") == "*** YWJj ***"  # a 3-character key: no base64 form


# ----- a server that echoes the key ----------------------------------------------------------------


@pytest.fixture
def echo(monkeypatch: pytest.MonkeyPatch) -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    conn = {"conn_type": "modelslab", "password": KEY, "host": server.url_for("/").rstrip("/")}
    monkeypatch.setenv("AIRFLOW_CONN_MODELSLAB_ECHO", json.dumps(conn))
    yield server
    server.clear()
    server.stop()


def _echoing_answer() -> dict[str, Any]:
    forms = encodings(KEY)
    return {
        "status": "processing",
        "id": 77,
        "eta": 5,
        "message": " ".join(f"{n}={f}" for n, f in forms.items()),
        "fetch_result": f"http://127.0.0.1/api/v6/video/fetch/77?key={forms['quote_plus']}&k2={forms['quote']}"
        f"&b={forms['base64-urlsafe']}",
        "meta": {"note": forms["base64"], "url": f"https://x.example/?t={forms['quote-lower-hex']}"},
    }


def test_fetch_url_message_and_meta_never_hold_the_key(echo: HTTPServer) -> None:
    from modelslab_provider.hooks.modelslab import ModelsLabHook

    echo.expect_request("/api/v6/video/fetch/77").respond_with_json(_echoing_answer())
    result = ModelsLabHook(modelslab_conn_id="modelslab_echo").fetch(77)
    assert result.fetch_result is not None
    assert result.fetch_result.startswith("http://127.0.0.1/api/v6/video/fetch/77?key=***")
    kept = json.dumps([result.message, result.fetch_result, result.details()], ensure_ascii=False)
    assert leaks(kept) == []


def test_an_error_answer_echoing_the_key_is_scrubbed_in_the_exception(echo: HTTPServer) -> None:
    from modelslab_provider.hooks.modelslab import ModelsLabHook

    answer = {
        "status": "error",
        "message": f"Invalid key {quote_plus(KEY)} / {base64.b64encode(KEY.encode()).decode()}",
    }
    echo.expect_request("/api/v6/video/fetch/78").respond_with_json(answer, status=401)
    with pytest.raises(ModelsLabError) as info:
        ModelsLabHook(modelslab_conn_id="modelslab_echo").fetch(78)
    assert leaks(str(info.value)) == []
    assert "***" in str(info.value)


def test_a_trigger_error_event_is_scrubbed_in_every_encoding() -> None:
    from modelslab_provider.triggers.video import VideoFetchTrigger

    trigger = VideoFetchTrigger(request_id="5", modelslab_conn_id="modelslab_echo")
    trigger._secret = KEY
    for form in encodings(KEY).values():
        event = trigger.error_event(ModelsLabError(f"upstream said: {form}!"))
        assert leaks(json.dumps(event, ensure_ascii=False)) == [], form
