"""ModelsLabHook: turns an Airflow connection into ModelsLab client settings.

The hook only adapts the connection (key in the password, base URL in the host, options in the
extra); requests, retries and response handling live in :mod:`modelslab_provider.client`.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook

from modelslab_provider.client.core import (
    DEFAULT_CONN_ID,
    DEFAULT_TIMEOUT,
    V6,
    Balance,
    ClientSettings,
    Status,
    VideoResult,
    is_loopback,
    normalise_base_url,
)
from modelslab_provider.client.errors import (
    ModelsLabAuthError,
    ModelsLabConfigError,
    ModelsLabError,
    ModelsLabNotFoundError,
    ModelsLabTransientError,
    refused_key_message,
)
from modelslab_provider.connection_form import CONN_FIELDS, UI_FIELD_BEHAVIOUR

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from modelslab_provider.client.aio import AsyncModelsLabClient
    from modelslab_provider.client.batch import BatchStatus, BatchSubmitted, EntryResult
    from modelslab_provider.client.submit import SubmittedRequest
    from modelslab_provider.client.sync import ModelsLabClient


def settings_from_connection(
    conn: Connection, extra: Mapping[str, Any], *, name_connection: bool = True
) -> ClientSettings:
    """Build client settings from a connection, with errors that name the connection and field.

    ``name_connection=False`` words the errors for the Test button, which checks a temporary copy
    of the connection under a random id.
    """
    conn_id = getattr(conn, "conn_id", None) or "?"
    this = f"Connection {conn_id!r}" if name_connection else "This connection"
    key = conn.password or extra.get("api_key")
    if not key or not str(key).strip():
        raise ModelsLabConfigError(
            f"{this} has no API key: put your ModelsLab API key in its password "
            "field (labelled 'API Key' in the UI)."
        )
    try:
        host = base_url_from_connection(conn)
        # an empty form field means the default; 0 is a value (and is refused below, not replaced)
        timeout = float(_given(extra.get("timeout"), DEFAULT_TIMEOUT))
        retries = int(_given(extra.get("max_retries"), 4))
    except ModelsLabConfigError as exc:
        raise ModelsLabConfigError(f"{this}: {exc}") from None
    except (TypeError, ValueError):
        raise ModelsLabConfigError(
            f"{this}: 'timeout' must be a number of seconds and 'max_retries' an integer."
        ) from None
    if not 1 <= retries <= 10:
        raise ModelsLabConfigError(f"{this}: 'max_retries' must be between 1 and 10.")
    try:
        settings = ClientSettings(
            api_key=str(key).strip(), base_url=host, timeout=timeout, max_retries=retries
        )
    except ModelsLabConfigError as exc:
        raise ModelsLabConfigError(f"{this}: {exc}") from None
    _refuse_cleartext(settings.base_url, extra.get("allow_plain_http"), this)
    return settings


def base_url_from_connection(conn: Connection) -> str:
    """The Base URL (host), with the Port field appended when the Base URL has no port of its own.

    A Base URL's own port wins over the Port field: the URL is what users copy from ModelsLab or
    from the simulator's banner, while Port exists for Airflow's Test button (see connection_form).
    """
    host = (conn.host or "").strip()
    if host and conn.port:
        parts = urlsplit(normalise_base_url(host))
        if parts.port is None:
            host = f"{parts.scheme}://{parts.netloc}:{int(conn.port)}{parts.path}"
    return host


def unused_port(conn: Connection, base_url: str) -> int | None:
    """The Port field's value when the address in ``base_url`` does not use it, else None."""
    if not conn.port:
        return None
    parts = urlsplit(base_url)
    used = parts.port or (443 if parts.scheme == "https" else 80)
    return None if int(conn.port) == used else int(conn.port)


def _refuse_cleartext(base_url: str, allowed: Any, this: str) -> None:
    """The key travels in the request body: plain http is for loopback (the simulator) or by opt-in."""
    parts = urlsplit(base_url)
    if parts.scheme != "http" or is_loopback(parts.hostname or "") or _truthy(allowed):
        return
    raise ModelsLabConfigError(
        f"{this}: the Base URL {base_url} uses plain http:// to another machine, which would send the "
        "API key unencrypted. Change the Base URL (host) field to https://, or, on a trusted network "
        "only, tick the extra field 'Allow plain http:// to a remote host' (allow_plain_http: true)."
    )


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return value is True


#: seconds the triggerer reuses a connection's looked-up client settings (see ``settings_max_age``)
TRIGGER_SETTINGS_MAX_AGE = 5.0

#: conn id -> (monotonic expiry, settings) of async lookups made with ``settings_max_age``
_settings_cache: dict[str, tuple[float, ClientSettings]] = {}
#: lookups in flight per event loop, so a burst of triggers on one connection makes one lookup
_lookups: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Task[ClientSettings]]] = (
    weakref.WeakKeyDictionary()
)


def clear_settings_cache() -> None:
    """Forget every cached connection lookup (tests that change a connection call this)."""
    _settings_cache.clear()


def _given(value: Any, default: Any) -> Any:
    return default if value is None or (isinstance(value, str) and not value.strip()) else value


def missing_connection_message(conn_id: str) -> str:
    return (
        f"Connection {conn_id!r} is not defined: create a connection of type 'modelslab' with your "
        "ModelsLab API key in its password field (API Key), for example "
        f'AIRFLOW_CONN_{conn_id.upper()}=\'{{"conn_type": "modelslab", "password": "<your key>"}}\'.'
    )


class ModelsLabHook(BaseHook):
    """Interact with the ModelsLab video API through an Airflow connection of type ``modelslab``.

    :param modelslab_conn_id: the connection holding the API key (password) and optional base URL (host).
    :param settings_max_age: seconds an async lookup of this connection may be reused by any hook in
        the process (0, the default: look it up every time). The trigger passes
        :data:`TRIGGER_SETTINGS_MAX_AGE`, so thousands of triggers starting together make one lookup.
    """

    conn_name_attr = "modelslab_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "modelslab"
    hook_name = "ModelsLab"

    def __init__(
        self, modelslab_conn_id: str = default_conn_name, *, settings_max_age: float = 0.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.settings_max_age = settings_max_age
        if not isinstance(modelslab_conn_id, str) or not modelslab_conn_id.strip():
            raise ModelsLabConfigError(
                f"modelslab_conn_id must be a connection id, got {modelslab_conn_id!r}"
            )
        self.modelslab_conn_id = modelslab_conn_id

    # ------------------------------------------------------------------ connection form (Airflow 3.1 UI)

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": list(UI_FIELD_BEHAVIOUR["hidden_fields"]),
            "relabeling": dict(UI_FIELD_BEHAVIOUR["relabeling"]),
            "placeholders": dict(UI_FIELD_BEHAVIOUR["placeholders"]),
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Legacy form widgets, read by Airflow 3.1 (which mocks wtforms); 3.2+ reads ``conn-fields``."""
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from wtforms import BooleanField, IntegerField, StringField
        from wtforms.validators import NumberRange, Optional

        timeout, retries = CONN_FIELDS["timeout"], CONN_FIELDS["max_retries"]
        plain_http = CONN_FIELDS["allow_plain_http"]
        return {
            "timeout": StringField(
                timeout["label"],
                widget=BS3TextFieldWidget(),
                description=timeout["description"],
                default=str(timeout["schema"]["default"]),
            ),
            "max_retries": IntegerField(
                retries["label"],
                widget=BS3TextFieldWidget(),
                validators=[Optional(), NumberRange(min=1, max=10)],
                description=retries["description"],
                default=retries["schema"]["default"],
            ),
            "allow_plain_http": BooleanField(
                plain_http["label"],
                description=plain_http["description"],
                default=plain_http["schema"]["default"],
            ),
        }

    # ------------------------------------------------------------------ settings and clients

    def get_client_settings(self) -> ClientSettings:
        try:
            conn = self.get_connection(self.modelslab_conn_id)
        except AirflowNotFoundException as exc:
            raise AirflowNotFoundException(missing_connection_message(self.modelslab_conn_id)) from exc
        settings = settings_from_connection(conn, conn.extra_dejson)
        _mask(settings.api_key)
        # a Port beside a Base URL with its own port (443, as the form's label asks) is said once,
        # in the Test button's message (test_connection), not in every task's log
        return settings

    async def aget_client_settings(self) -> ClientSettings:
        """Async connection lookup, safe inside the triggerer's event loop.

        With ``settings_max_age`` > 0, a lookup made in this process less than that many seconds
        ago is reused, and concurrent lookups of one connection share a single one.
        """
        if self.settings_max_age <= 0:
            return await self._alookup_settings()
        conn_id = self.modelslab_conn_id
        cached = _settings_cache.get(conn_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        pending = _lookups.setdefault(asyncio.get_running_loop(), {})
        task = pending.get(conn_id)
        if task is None:
            task = asyncio.ensure_future(self._alookup_settings())
            pending[conn_id] = task
            max_age = self.settings_max_age

            def store(done: asyncio.Task[ClientSettings]) -> None:
                if pending.get(conn_id) is done:
                    del pending[conn_id]
                if not done.cancelled() and done.exception() is None:
                    _settings_cache[conn_id] = (time.monotonic() + max_age, done.result())

            task.add_done_callback(store)
        # one waiter giving up (its trigger cancelled) does not cancel the lookup for the others
        return await asyncio.shield(task)

    async def _alookup_settings(self) -> ClientSettings:
        from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson

        try:
            conn = await get_async_connection(self.modelslab_conn_id, hook=self)
        except AirflowNotFoundException as exc:
            raise AirflowNotFoundException(missing_connection_message(self.modelslab_conn_id)) from exc
        settings = settings_from_connection(conn, await get_async_extra_dejson(conn))
        await _amask(settings.api_key)
        return settings

    @cached_property
    def client(self) -> ModelsLabClient:
        from modelslab_provider.client.sync import ModelsLabClient

        return ModelsLabClient(self.get_client_settings())

    def get_conn(self) -> ModelsLabClient:
        return self.client

    async def aget_client(self) -> AsyncModelsLabClient:
        from modelslab_provider.client.aio import AsyncModelsLabClient

        return AsyncModelsLabClient(await self.aget_client_settings())

    # ------------------------------------------------------------------ API

    def submit(self, endpoint: str, payload: Mapping[str, Any]) -> VideoResult:
        """Start a generation on ``endpoint`` (e.g. ``text2video`` or ``v7/text-to-video``)."""
        return self.client.submit(endpoint, payload)

    def submit_request(
        self, endpoint: str, payload: Mapping[str, Any], **kwargs: Any
    ) -> tuple[SubmittedRequest, VideoResult]:
        """The paid submit with its rules (never repeat an ambiguous failure, wait for a queue slot).

        Arguments of :meth:`~modelslab_provider.client.sync.ModelsLabClient.submit_request`.
        """
        return self.client.submit_request(endpoint, payload, **kwargs)

    def recheck_request(
        self, stored: Any, fingerprint: str
    ) -> tuple[str, SubmittedRequest | None, VideoResult | None]:
        """What a new try does with the request an earlier try stored (at most one free fetch).

        ``running`` (reconnect) or ``done`` (reuse its video), else a reason to submit anew:
        ``unusable``, ``superseded`` (another server, endpoint or payload), ``not_found``, ``failed``.
        An unreadable status counts as running: an unknown state is no reason to pay again.
        """
        from modelslab_provider.client.submit import SubmittedRequest

        job = SubmittedRequest.from_dict(stored)
        if job is None:
            self.log.warning("Ignoring an unreadable stored ModelsLab request (%r)", stored)
            return "unusable", None, None
        rid = job.request_id
        if job.fingerprint != fingerprint:
            self.log.info(
                "Stored ModelsLab request %s was made for another server, endpoint or payload; "
                "submitting anew",
                rid,
            )
            return "superseded", job, None
        try:
            result = self.fetch(rid, job.api_version, job.fetch_url)
        except ModelsLabNotFoundError as exc:
            self.log.warning("ModelsLab no longer knows request %s (%s); submitting anew", rid, exc)
            return "not_found", job, None
        except ModelsLabTransientError as exc:
            self.log.warning("Could not check ModelsLab request %s (%s); reconnecting to it", rid, exc)
            return "running", job, None
        if result.status is Status.DONE:
            return "done", job, result
        if result.status is Status.FAILED:
            self.log.warning(
                "ModelsLab request %s from an earlier try ended with %s (%s); submitting anew",
                rid,
                result.raw_status,
                result.message or "no message",
            )
            return "failed", job, result
        self.log.info(
            "ModelsLab request %s from an earlier try is still %s; reconnecting instead of submitting again",
            rid,
            result.raw_status,
        )
        return "running", job, result

    def request_fingerprint(self, endpoint: str, payload: Mapping[str, Any]) -> str:
        """What a stored request must match to be reused: server origin, endpoint and payload."""
        return self.client.fingerprint(endpoint, payload)

    def fetch(
        self,
        request_id: Any,
        api_version: str = V6,
        fetch_url: str | None = None,
        *,
        deadline: float | None = None,
    ) -> VideoResult:
        """Poll a request once; ``deadline`` (epoch seconds) bounds the call, retries included."""
        return self.client.fetch(request_id, api_version, fetch_url, deadline=deadline)

    def wait(self, request_id: Any, **kwargs: Any) -> VideoResult:
        """Poll in this process until the video is done (arguments of ``ModelsLabClient.wait``)."""
        return self.client.wait(request_id, **kwargs)

    async def afetch(
        self, request_id: Any, api_version: str = V6, fetch_url: str | None = None
    ) -> VideoResult:
        async with await self.aget_client() as client:
            return await client.fetch(request_id, api_version, fetch_url)

    def wallet_balance(self) -> Balance:
        return self.client.wallet_balance()

    def submit_batch(self, body: Mapping[str, Any], **kwargs: Any) -> BatchSubmitted:
        """Submit one Video Batch (paid; arguments of ``ModelsLabClient.submit_batch``)."""
        return self.client.submit_batch(body, **kwargs)

    def fetch_batch(self, batch_id: Any, size: int) -> BatchStatus:
        return self.client.fetch_batch(batch_id, size)

    def wait_batches(
        self, jobs: Sequence[Mapping[str, Any]], **kwargs: Any
    ) -> dict[str, tuple[EntryResult, ...]]:
        """Poll a batch task's jobs in this process until all finish (``ModelsLabClient.wait_batches``)."""
        return self.client.wait_batches(jobs, **kwargs)

    async def afetch_batch(self, batch_id: Any, size: int) -> BatchStatus:
        async with await self.aget_client() as client:
            return await client.fetch_batch(batch_id, size)

    def test_connection(self) -> tuple[bool, str]:
        """Check the key with the free wallet-balance call; never creates paid work.

        Airflow's Test button runs this on a temporary copy of the connection under a random id,
        so no message names the connection; each one names the address it used instead.
        """
        from modelslab_provider.client.sync import ModelsLabClient

        try:
            conn = self.get_connection(self.modelslab_conn_id)
            settings = settings_from_connection(conn, conn.extra_dejson, name_connection=False)
        except ModelsLabError as exc:
            return False, str(exc)
        except Exception as exc:  # the UI shows this text; never a traceback with internals
            return False, f"Could not read the connection: {type(exc).__name__}: {exc}"
        _mask(settings.api_key)
        address = settings.base_url
        port = unused_port(conn, address)
        used = f" (the Base URL's address; the Port field's {port} is not used)" if port else ""
        client = ModelsLabClient(settings)
        try:
            balance = client.wallet_balance()
        except ModelsLabAuthError as exc:
            return False, f"{refused_key_message(exc)} Tested {address}{used}."
        except ModelsLabError as exc:
            return False, f"{str(exc).rstrip('.')}. Tested {address}{used}."
        except Exception as exc:  # the UI shows this text; never a traceback with internals
            return False, f"Could not test ModelsLab at {address}{used}: {type(exc).__name__}: {exc}"
        finally:
            client.close()
        return True, f"Connected to ModelsLab at {address}{used}; wallet balance: {balance}."


def _mask(secret: str) -> None:
    try:
        from airflow.providers.common.compat.sdk import mask_secret

        mask_secret(secret)
    except Exception:  # noqa: S110  (masking is best effort outside a task; the SDK already masks passwords)
        pass


async def _amask(secret: str) -> None:
    try:
        from airflow.sdk.log import amask_secret

        await amask_secret(secret)
    except Exception:  # noqa: S110  (no async masker in older SDKs; the lookup already masked it)
        pass
