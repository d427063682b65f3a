"""ModelsLabHook: turns an Airflow connection into ModelsLab client settings.

The hook only adapts the connection (key in the password, base URL in the host, options in the
extra); requests, retries and response handling live in :mod:`modelslab_provider.client`.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook

from modelslab_provider.client.core import (
    DEFAULT_TIMEOUT,
    V6,
    Balance,
    ClientSettings,
    VideoResult,
    normalise_base_url,
)
from modelslab_provider.client.errors import ModelsLabAuthError, ModelsLabConfigError, ModelsLabError
from modelslab_provider.connection_form import CONN_FIELDS, UI_FIELD_BEHAVIOUR

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from modelslab_provider.client.aio import AsyncModelsLabClient
    from modelslab_provider.client.sync import ModelsLabClient


def settings_from_connection(conn: Connection, extra: Mapping[str, Any]) -> ClientSettings:
    """Build client settings from a connection, with errors that name the connection and field."""
    conn_id = getattr(conn, "conn_id", None) or "?"
    key = conn.password or extra.get("api_key")
    if not key or not str(key).strip():
        raise ModelsLabConfigError(
            f"Connection {conn_id!r} has no API key: put your ModelsLab API key in its password "
            "field (labelled 'API Key' in the UI)."
        )
    host = (conn.host or "").strip()
    try:
        if host and conn.port:
            parts = urlsplit(normalise_base_url(host))
            if parts.port is None:
                host = f"{parts.scheme}://{parts.netloc}:{int(conn.port)}{parts.path}"
        # an empty form field means the default; 0 is a value (and is refused below, not replaced)
        timeout = float(_given(extra.get("timeout"), DEFAULT_TIMEOUT))
        retries = int(_given(extra.get("max_retries"), 4))
    except ModelsLabConfigError as exc:
        raise ModelsLabConfigError(f"Connection {conn_id!r}: {exc}") from None
    except (TypeError, ValueError):
        raise ModelsLabConfigError(
            f"Connection {conn_id!r}: 'timeout' must be a number of seconds and 'max_retries' an integer."
        ) from None
    if not 1 <= retries <= 10:
        raise ModelsLabConfigError(f"Connection {conn_id!r}: 'max_retries' must be between 1 and 10.")
    try:
        return ClientSettings(api_key=str(key).strip(), base_url=host, timeout=timeout, max_retries=retries)
    except ModelsLabConfigError as exc:
        raise ModelsLabConfigError(f"Connection {conn_id!r}: {exc}") from None


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
    default_conn_name = "modelslab_default"
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
        from wtforms import IntegerField, StringField
        from wtforms.validators import NumberRange, Optional

        timeout, retries = CONN_FIELDS["timeout"], CONN_FIELDS["max_retries"]
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
        }

    # ------------------------------------------------------------------ settings and clients

    def get_client_settings(self) -> ClientSettings:
        try:
            conn = self.get_connection(self.modelslab_conn_id)
        except AirflowNotFoundException as exc:
            raise AirflowNotFoundException(missing_connection_message(self.modelslab_conn_id)) from exc
        settings = settings_from_connection(conn, conn.extra_dejson)
        _mask(settings.api_key)
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

    def fetch(self, request_id: Any, api_version: str = V6, fetch_url: str | None = None) -> VideoResult:
        return self.client.fetch(request_id, api_version, fetch_url)

    async def afetch(
        self, request_id: Any, api_version: str = V6, fetch_url: str | None = None
    ) -> VideoResult:
        async with await self.aget_client() as client:
            return await client.fetch(request_id, api_version, fetch_url)

    def wallet_balance(self) -> Balance:
        return self.client.wallet_balance()

    def test_connection(self) -> tuple[bool, str]:
        """Check the key with the free wallet-balance call; never creates paid work."""
        try:
            balance = self.wallet_balance()
        except ModelsLabAuthError as exc:
            return (
                False,
                f"{str(exc).rstrip('.')}. Check the API Key of connection {self.modelslab_conn_id!r}.",
            )
        except ModelsLabError as exc:
            return False, str(exc)
        except Exception as exc:  # the UI shows this text; never a traceback with internals
            return False, f"Could not test connection {self.modelslab_conn_id!r}: {type(exc).__name__}: {exc}"
        return True, f"Connected to ModelsLab at {self.client.settings.base_url}; wallet balance: {balance}."


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
