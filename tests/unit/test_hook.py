"""ModelsLabHook: connections from AIRFLOW_CONN_* (JSON and URI), errors that name the field, test_connection,
secret masking, and sync/async calls against the simulator."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from modelslab_provider.client.core import ClientSettings, Status
from modelslab_provider.client.errors import ModelsLabConfigError
from modelslab_provider.hooks.modelslab import TRIGGER_SETTINGS_MAX_AGE, ModelsLabHook
from modelslab_provider.simulator import Simulator

KEY = "sk-hook-test/with+odd=chars-7c1d"
CONN_ID = "modelslab_hooktest"
ENV = f"AIRFLOW_CONN_{CONN_ID.upper()}"


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(port=0, duration=0.2) as simulator:
        yield simulator


def set_json(monkeypatch: pytest.MonkeyPatch, **conn: object) -> None:
    monkeypatch.setenv(ENV, json.dumps({"conn_type": "modelslab", **conn}))


def hook_settings(monkeypatch: pytest.MonkeyPatch, uri: str) -> ClientSettings:
    monkeypatch.setenv(ENV, uri)
    return ModelsLabHook(CONN_ID).get_client_settings()


# --------------------------------------------------------------------------- connection forms


def test_json_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    set_json(monkeypatch, password=KEY, host="http://127.0.0.1:8765", extra={"timeout": 12, "max_retries": 2})
    settings = ModelsLabHook(CONN_ID).get_client_settings()
    assert settings.api_key == KEY
    assert settings.base_url == "http://127.0.0.1:8765"
    assert settings.timeout == 12.0
    assert settings.max_retries == 2


def test_json_connection_defaults_to_the_real_api(monkeypatch: pytest.MonkeyPatch) -> None:
    set_json(monkeypatch, password=KEY)
    settings = ModelsLabHook(CONN_ID).get_client_settings()
    assert settings.base_url == "https://modelslab.com"
    assert settings.timeout == 30.0


def test_json_connection_with_separate_port(monkeypatch: pytest.MonkeyPatch) -> None:
    set_json(monkeypatch, password=KEY, host="127.0.0.1", port=8765)
    assert ModelsLabHook(CONN_ID).get_client_settings().base_url == "http://127.0.0.1:8765"


def test_timeout_from_the_3_1_form_arrives_as_a_string(monkeypatch: pytest.MonkeyPatch) -> None:
    set_json(monkeypatch, password=KEY, extra={"timeout": "45.0", "max_retries": "3"})
    settings = ModelsLabHook(CONN_ID).get_client_settings()
    assert (settings.timeout, settings.max_retries) == (45.0, 3)


@pytest.mark.parametrize(
    ("host_part", "base"),
    [
        (quote("http://127.0.0.1:8765", safe=""), "http://127.0.0.1:8765"),
        ("127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("modelslab.com", "https://modelslab.com"),
        (quote("https://enterprise.example.com:8443", safe=""), "https://enterprise.example.com:8443"),
    ],
)
def test_uri_connection(monkeypatch: pytest.MonkeyPatch, host_part: str, base: str) -> None:
    settings = hook_settings(monkeypatch, f"modelslab://:{quote(KEY, safe='')}@{host_part}?timeout=7")
    assert settings.api_key == KEY
    assert settings.base_url == base
    assert settings.timeout == 7.0


# --------------------------------------------------------------------------- bad connections


def test_missing_connection_names_it_and_says_how_to_create_it() -> None:
    with pytest.raises(Exception, match="modelslab_nowhere") as exc_info:
        ModelsLabHook("modelslab_nowhere").get_client_settings()
    text = str(exc_info.value)
    assert "AIRFLOW_CONN_MODELSLAB_NOWHERE" in text
    assert "password" in text


@pytest.mark.parametrize("password", ["", "   ", None])
def test_empty_key_names_connection_and_field(monkeypatch: pytest.MonkeyPatch, password: str | None) -> None:
    set_json(monkeypatch, password=password, host="modelslab.com")
    with pytest.raises(ModelsLabConfigError) as exc_info:
        ModelsLabHook(CONN_ID).get_client_settings()
    assert CONN_ID in str(exc_info.value)
    assert "password" in str(exc_info.value)


@pytest.mark.parametrize("host", ["http://", "https:///x", "ftp://modelslab.com"])
def test_bad_base_url_names_connection_and_field(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    set_json(monkeypatch, password=KEY, host=host)
    with pytest.raises(ModelsLabConfigError) as exc_info:
        ModelsLabHook(CONN_ID).get_client_settings()
    text = str(exc_info.value)
    assert CONN_ID in text
    assert "Base URL (host)" in text
    assert KEY not in text


@pytest.mark.parametrize(
    ("extra", "field"),
    [({"timeout": "soon"}, "timeout"), ({"max_retries": 99}, "max_retries"), ({"timeout": 0}, "timeout")],
)
def test_bad_extra_names_connection_and_field(
    monkeypatch: pytest.MonkeyPatch, extra: dict, field: str
) -> None:
    set_json(monkeypatch, password=KEY, extra=extra)
    with pytest.raises(ModelsLabConfigError, match=CONN_ID) as exc_info:
        ModelsLabHook(CONN_ID).get_client_settings()
    assert field in str(exc_info.value)


@pytest.mark.parametrize(
    "host",
    ["http://modelslab.com", "http://10.0.0.5:8765", "http://sim.internal:8765/api", "http://[2001:db8::1]"],
)
def test_plain_http_to_another_machine_is_refused(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    """Issue 11 item 10: the key travels in the body, so plain http:// only to loopback or by opt-in."""
    set_json(monkeypatch, password=KEY, host=host)
    with pytest.raises(ModelsLabConfigError) as exc_info:
        ModelsLabHook(CONN_ID).get_client_settings()
    text = str(exc_info.value)
    assert CONN_ID in text
    assert "Base URL (host)" in text
    assert "allow_plain_http" in text
    assert KEY not in text
    ok, message = ModelsLabHook(CONN_ID).test_connection()
    assert not ok
    assert "unencrypted" in message


@pytest.mark.parametrize("allow", [True, "true", "True", "1"])
def test_plain_http_to_another_machine_when_the_connection_allows_it(
    monkeypatch: pytest.MonkeyPatch, allow: object
) -> None:
    set_json(monkeypatch, password=KEY, host="http://sim.internal:8765", extra={"allow_plain_http": allow})
    assert ModelsLabHook(CONN_ID).get_client_settings().base_url == "http://sim.internal:8765"


def test_plain_http_opt_in_from_a_uri_and_its_negatives(monkeypatch: pytest.MonkeyPatch) -> None:
    host = quote("http://sim.internal:8765", safe="")
    settings = hook_settings(monkeypatch, f"modelslab://:k@{host}?allow_plain_http=true")
    assert settings.base_url == "http://sim.internal:8765"
    for no in ("false", "", "0"):
        with pytest.raises(ModelsLabConfigError, match="unencrypted"):
            hook_settings(monkeypatch, f"modelslab://:k@{host}?allow_plain_http={no}")


@pytest.mark.parametrize(
    "host",
    ["http://127.0.0.1:8765", "http://localhost:8765", "http://[::1]:8765", "http://127.0.0.2", "localhost"],
)
def test_plain_http_to_loopback_stays_allowed(monkeypatch: pytest.MonkeyPatch, host: str) -> None:
    set_json(monkeypatch, password=KEY, host=host)
    assert ModelsLabHook(CONN_ID).get_client_settings().base_url.startswith("http://")


def test_conn_id_must_be_a_string() -> None:
    with pytest.raises(ModelsLabConfigError, match="modelslab_conn_id"):
        ModelsLabHook("")


# --------------------------------------------------------------------------- test_connection


def test_test_connection_reports_the_balance(monkeypatch: pytest.MonkeyPatch, sim: Simulator) -> None:
    set_json(monkeypatch, password=KEY, host=sim.url)
    ok, message = ModelsLabHook(CONN_ID).test_connection()
    assert ok, message
    assert "43.60 USD" in message
    assert KEY not in message
    wallet_calls = [r for r in sim.requests() if r["path"] == "/api/wallet_balance"]
    assert wallet_calls
    assert all(r["method"] == "POST" and r["key_present"] for r in wallet_calls)
    paid = ("/api/v6/video/text", "/api/v7/video-fusion/text")
    assert not any(r["path"].startswith(paid) for r in sim.requests())


@pytest.mark.parametrize("auth_status", [200, 401])
def test_test_connection_explains_a_refused_key(
    monkeypatch: pytest.MonkeyPatch, sim: Simulator, auth_status: int
) -> None:
    bad_key = "invalid-key-for-hook-test"
    set_json(monkeypatch, password=bad_key, host=sim.url)
    sim.configure(auth_error_status=auth_status)
    try:
        ok, message = ModelsLabHook(CONN_ID).test_connection()
    finally:
        sim.configure(auth_error_status=200)
    assert not ok
    # Airflow's Test button tests a copy under a random id: the message names the address instead
    assert message == (
        "ModelsLab refused the API key: Invalid API key. Check the API Key (password field) of "
        f"this connection. Tested {sim.url}."
    )
    assert CONN_ID not in message
    assert "Check the API Key (password field) of this connection." in message
    assert bad_key not in message


def test_a_refused_key_reads_the_same_on_the_test_button_and_in_a_failed_task(
    monkeypatch: pytest.MonkeyPatch, sim: Simulator
) -> None:
    """One wording (issue 17): the Test button, the operators, the sensor and the trigger."""
    from modelslab_provider.client.errors import ModelsLabAuthError
    from modelslab_provider.events import failure
    from modelslab_provider.triggers.video import error_message

    set_json(monkeypatch, password="invalid-key-wording", host=sim.url)
    _, on_test_button = ModelsLabHook(CONN_ID).test_connection()
    refused = ModelsLabAuthError("ModelsLab refused the API key: Invalid API key")
    in_task = str(failure(refused, CONN_ID))
    in_trigger = error_message(refused, CONN_ID)
    advice = "ModelsLab refused the API key: Invalid API key. Check the API Key (password field) of {}."
    assert on_test_button.startswith(advice.format("this connection"))
    assert in_task == in_trigger == advice.format(f"connection {CONN_ID!r}")


def test_test_connection_names_no_connection_id(monkeypatch: pytest.MonkeyPatch) -> None:
    set_json(monkeypatch, password="", host="http://127.0.0.1:9")
    ok, message = ModelsLabHook(CONN_ID).test_connection()
    assert not ok
    assert message.startswith("This connection has no API key")
    assert CONN_ID not in message


def test_a_base_url_port_wins_over_the_port_field_and_test_says_so(
    monkeypatch: pytest.MonkeyPatch, sim: Simulator
) -> None:
    set_json(monkeypatch, password=KEY, host=sim.url, port=443)
    hook = ModelsLabHook(CONN_ID)
    assert hook.get_client_settings().base_url == sim.url
    ok, message = hook.test_connection()
    assert ok, message
    assert message.startswith(
        f"Connected to ModelsLab at {sim.url} (the Base URL's address; the Port field's 443 is not used);"
    )
    # the Port field is used when the Base URL has no port, and then the message has no remark
    host, port = sim.url.rsplit(":", 1)
    set_json(monkeypatch, password=KEY, host=host, port=int(port))
    ok, message = ModelsLabHook(CONN_ID).test_connection()
    assert ok, message
    assert message.startswith(f"Connected to ModelsLab at {sim.url}; wallet balance:")
    # 443 for an https Base URL without a port is the address itself, not an unused field
    set_json(monkeypatch, password=KEY, port=443)
    assert ModelsLabHook(CONN_ID).get_client_settings().base_url == "https://modelslab.com"


def test_a_port_typed_as_the_form_asks_logs_no_warning_in_tasks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Port 443 (the form's label asks for it) beside a Base URL with its own port: the Test message
    says it is unused (above); tasks, which read the connection on every run, stay quiet (issue 25)."""
    set_json(monkeypatch, password=KEY, host="http://127.0.0.1:8765", port=443)
    capsys.readouterr()
    assert ModelsLabHook(CONN_ID).get_client_settings().base_url == "http://127.0.0.1:8765"
    logged = capsys.readouterr()
    assert "Port field" not in logged.out + logged.err


def test_a_failed_test_names_the_address_it_tried(monkeypatch: pytest.MonkeyPatch) -> None:
    set_json(monkeypatch, password=KEY, host="http://127.0.0.1:9", port=443, extra={"max_retries": 1})
    ok, message = ModelsLabHook(CONN_ID).test_connection()
    assert not ok
    assert message.endswith(
        "Tested http://127.0.0.1:9 (the Base URL's address; the Port field's 443 is not used)."
    )


def test_test_connection_unreachable_and_misconfigured(monkeypatch: pytest.MonkeyPatch) -> None:
    set_json(monkeypatch, password=KEY, host="http://127.0.0.1:9", extra={"max_retries": 1, "timeout": 2})
    ok, message = ModelsLabHook(CONN_ID).test_connection()
    assert not ok
    assert "connect" in message
    set_json(monkeypatch, password=KEY, host="http://")
    ok, message = ModelsLabHook(CONN_ID).test_connection()
    assert not ok
    assert "Base URL (host)" in message
    assert KEY not in message


# --------------------------------------------------------------------------- secrets


def test_key_is_registered_with_the_masker(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.common.compat import sdk

    masked: list[str] = []
    monkeypatch.setattr(sdk, "mask_secret", lambda value, *a, **kw: masked.append(value))
    set_json(monkeypatch, password=KEY)
    ModelsLabHook(CONN_ID).get_client_settings()
    assert KEY in masked


def test_key_is_masked_by_the_real_masker(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.log import redact

    set_json(monkeypatch, password=KEY)
    ModelsLabHook(CONN_ID).get_client_settings()
    assert KEY not in str(redact(f"calling ModelsLab with {KEY}"))


def test_no_repr_shows_the_key(monkeypatch: pytest.MonkeyPatch, sim: Simulator) -> None:
    set_json(monkeypatch, password=KEY, host=sim.url)
    hook = ModelsLabHook(CONN_ID)
    client = hook.client
    for text in (repr(hook), str(hook), repr(client), repr(client.settings), str(client.settings)):
        assert KEY not in text
    assert sim.url in repr(client)


# --------------------------------------------------------------------------- calls


def test_submit_and_fetch_through_the_hook(monkeypatch: pytest.MonkeyPatch, sim: Simulator) -> None:
    set_json(monkeypatch, password=KEY, host=sim.url)
    hook = ModelsLabHook(CONN_ID)
    submitted = hook.submit("text2video", {"prompt": "a hook cat [sim:instant=1]"})
    assert submitted.status is Status.DONE
    fetched = hook.fetch(submitted.request_id, fetch_url=submitted.fetch_result)
    assert fetched.urls == submitted.urls
    assert str(hook.wallet_balance()) == "43.60 USD"
    assert hook.get_conn() is hook.client


async def test_async_fetch_through_the_hook(monkeypatch: pytest.MonkeyPatch, sim: Simulator) -> None:
    from modelslab_provider.client.aio import close_shared_session

    set_json(monkeypatch, password=KEY, host=sim.url)
    hook = ModelsLabHook(CONN_ID)
    submitted = hook.submit("v7/text-to-video", {"prompt": "async cat [sim:instant=1]", "model_id": "veo-3"})
    try:
        fetched = await hook.afetch(submitted.request_id, "v7")
        client = await hook.aget_client()
    finally:
        await close_shared_session()
    assert fetched.status is Status.DONE
    assert fetched.urls == submitted.urls
    assert client.settings.base_url == sim.url
    assert KEY not in repr(client)


async def test_async_missing_connection_names_it() -> None:
    with pytest.raises(Exception, match="AIRFLOW_CONN_MODELSLAB_ASYNC_NOWHERE"):
        await ModelsLabHook("modelslab_async_nowhere").aget_client_settings()


def test_the_hooks_public_api_submits_once_fetches_and_waits(
    monkeypatch: pytest.MonkeyPatch, sim: Simulator
) -> None:
    """Issue 25: typed paid submits with a track_id, one free fetch, a wait, the balance (docs/hook.md)."""
    set_json(monkeypatch, password=KEY, host=sim.url)
    hook = ModelsLabHook(CONN_ID)
    job = hook.text_to_video("a hook dog [sim:polls=2 eta=1]", track_id="my-campaign-1")
    assert job.track_id == "my-campaign-1"
    assert job.api_version == "v6"
    assert KEY not in str(job.to_dict())
    sent = next(r["body"] for r in sim.requests() if "a hook dog" in str(r.get("body")))
    assert sent["track_id"] == "my-campaign-1"
    assert sent["model_id"] == "wan2.2"  # the documented default
    assert hook.get_video(job.request_id).status is Status.RUNNING  # one free fetch
    done = hook.wait_for_video(job.request_id, timeout=30, poll_interval=0.05)
    assert done.status is Status.DONE
    assert done.urls
    image = hook.image_to_video("https://example.com/cat.png", prompt="turns its head")
    assert image.track_id.startswith("hook-")  # a track_id is always sent
    assert sum(1 for r in sim.requests() if "turns its head" in str(r.get("body"))) == 1
    with pytest.raises(ModelsLabConfigError, match="prompt must be a non-empty string"):
        hook.text_to_video("  ")
    assert hook.wallet_balance() is not None
    for internal in ("recheck_request", "request_fingerprint", "submit_request", "submit_batch"):
        assert not hasattr(hook, internal), internal


# --------------------------------------------------------------------------- the triggerer's lookup cache


def count_lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every real connection lookup (the method behind the cache)."""
    looked_up: list[str] = []
    real = ModelsLabHook._alookup_settings

    async def counting(self: ModelsLabHook) -> ClientSettings:
        looked_up.append(self.modelslab_conn_id)
        await asyncio.sleep(0.01)  # a lookup takes a while: concurrent callers overlap it
        return await real(self)

    monkeypatch.setattr(ModelsLabHook, "_alookup_settings", counting)
    return looked_up


async def test_triggers_starting_together_share_one_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    set_json(monkeypatch, password=KEY, host="http://127.0.0.1:1")
    looked_up = count_lookups(monkeypatch)
    hooks = [ModelsLabHook(CONN_ID, settings_max_age=TRIGGER_SETTINGS_MAX_AGE) for _ in range(50)]
    settings = await asyncio.gather(*(h.aget_client_settings() for h in hooks))
    assert looked_up == [CONN_ID]
    assert {s.api_key for s in settings} == {KEY}
    await hooks[0].aget_client_settings()  # within the max age: still no second lookup
    assert looked_up == [CONN_ID]


async def test_a_rotated_key_is_used_once_the_max_age_has_passed(monkeypatch: pytest.MonkeyPatch) -> None:
    from modelslab_provider.hooks import modelslab as module

    clock = [1000.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: clock[0])
    set_json(monkeypatch, password="sk-old-key-0001", host="http://127.0.0.1:1")
    hook = ModelsLabHook(CONN_ID, settings_max_age=5.0)
    assert (await hook.aget_client_settings()).api_key == "sk-old-key-0001"
    set_json(monkeypatch, password="sk-new-key-0002", host="http://127.0.0.1:1")
    clock[0] += 4.9  # the documented window: up to max age seconds after the last lookup
    assert (await hook.aget_client_settings()).api_key == "sk-old-key-0001"
    clock[0] += 0.2
    assert (await hook.aget_client_settings()).api_key == "sk-new-key-0002"


async def test_without_a_max_age_every_lookup_reads_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    set_json(monkeypatch, password="sk-old-key-0001", host="http://127.0.0.1:1")
    looked_up = count_lookups(monkeypatch)
    await ModelsLabHook(CONN_ID, settings_max_age=5.0).aget_client_settings()  # fills the cache
    set_json(monkeypatch, password="sk-new-key-0002", host="http://127.0.0.1:1")
    assert (await ModelsLabHook(CONN_ID).aget_client_settings()).api_key == "sk-new-key-0002"
    assert len(looked_up) == 2


async def test_a_failed_lookup_is_not_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    looked_up = count_lookups(monkeypatch)
    hook = ModelsLabHook(CONN_ID, settings_max_age=60.0)
    monkeypatch.delenv(ENV, raising=False)
    results = await asyncio.gather(*(hook.aget_client_settings() for _ in range(5)), return_exceptions=True)
    assert all("is not defined" in str(r) for r in results)
    assert len(looked_up) == 1  # the concurrent callers shared the failing lookup
    set_json(monkeypatch, password=KEY, host="http://127.0.0.1:1")
    assert (await hook.aget_client_settings()).api_key == KEY
    assert len(looked_up) == 2
