"""ModelsLabHook: the ModelsLab video API through an Airflow connection, for operators and ``@task`` code.

Public API (docs/hook.md): :meth:`~ModelsLabHook.text_to_video`, :meth:`~ModelsLabHook.image_to_video`
(paid, submitted once), :meth:`~ModelsLabHook.get_video` (one free fetch),
:meth:`~ModelsLabHook.wait_for_video`, :meth:`~ModelsLabHook.wallet_balance`, ``test_connection``.
The connection is read in :mod:`.connection`; requests, retries and responses live in
:mod:`modelslab_provider.client`.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook

from modelslab_provider.client.core import (
    DEFAULT_CONN_ID,
    V6,
    Balance,
    ClientSettings,
    VideoResult,
)
from modelslab_provider.client.errors import (
    ModelsLabAuthError,
    ModelsLabConfigError,
    ModelsLabError,
    refused_key_message,
)
from modelslab_provider.connection_form import CONN_FIELDS, UI_FIELD_BEHAVIOUR
from modelslab_provider.hooks.connection import (  # noqa: F401  (re-exported: older imports keep working)
    base_url_from_connection,
    missing_connection_message,
    settings_from_connection,
    unused_port,
)

if TYPE_CHECKING:
    from modelslab_provider.client.aio import AsyncModelsLabClient
    from modelslab_provider.client.submit import SubmittedRequest
    from modelslab_provider.client.sync import ModelsLabClient


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

    # ------------------------------------------------------------------ the public API (docs/hook.md)

    def text_to_video(
        self,
        prompt: str,
        *,
        model_id: str | None = None,
        negative_prompt: str | None = None,
        api_version: str = V6,
        endpoint: str | None = None,
        track_id: str | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> SubmittedRequest:
        """Submit one paid text-to-video request (v6 ``text2video`` or v7 ``text-to-video``).

        Sent at most once as far as anyone can tell (an ambiguous failure raises
        :class:`ModelsLabAmbiguousSubmitError` naming ``track_id``, never a second submit).
        Returns the submitted request: ``request_id``, ``track_id``, ``api_version``, ``eta``.
        """
        if not isinstance(prompt, str) or not prompt.strip():
            raise ModelsLabConfigError(f"prompt must be a non-empty string, got {prompt!r}")
        target = endpoint or ("text2video" if api_version == V6 else "text-to-video")
        fields = {"prompt": prompt, "model_id": model_id, "negative_prompt": negative_prompt}
        return self._typed_submit(target, fields, parameters, track_id, api_version)

    def image_to_video(
        self,
        init_image: str | list[str],
        *,
        prompt: str | None = None,
        model_id: str | None = None,
        api_version: str = V6,
        endpoint: str | None = None,
        track_id: str | None = None,
        parameters: Mapping[str, Any] | None = None,
    ) -> SubmittedRequest:
        """Submit one paid image-to-video request (v6 ``img2video`` or v7 ``image-to-video``).

        The same rules and return value as :meth:`text_to_video`.
        """
        from modelslab_provider.client.submit import image_urls

        if not image_urls(init_image):
            raise ModelsLabConfigError(
                f"init_image must be an image URL (or a list of URLs), got {init_image!r}"
            )
        target = endpoint or ("img2video" if api_version == V6 else "image-to-video")
        fields = {"init_image": init_image, "prompt": prompt, "model_id": model_id}
        return self._typed_submit(target, fields, parameters, track_id, api_version)

    def _typed_submit(
        self,
        endpoint: str,
        fields: Mapping[str, Any],
        parameters: Mapping[str, Any] | None,
        track_id: str | None,
        api_version: str,
    ) -> SubmittedRequest:
        import uuid

        from modelslab_provider.client.submit import typed_payload

        body = typed_payload(endpoint, fields, parameters, api_version=api_version)
        track = track_id or f"hook-{uuid.uuid4().hex[:16]}"
        request, _ = self.client.submit_request(endpoint, body, track_id=track)
        self.log.info(
            "Submitted ModelsLab request %s to %s (track_id %s)",
            request.request_id,
            endpoint,
            request.track_id,
        )
        return request

    def get_video(self, request_id: Any, api_version: str = V6, fetch_url: str | None = None) -> VideoResult:
        """One free fetch of a request: its status, and its output URLs once done."""
        return self.client.fetch(request_id, api_version, fetch_url)

    def wait_for_video(
        self,
        request_id: Any,
        *,
        timeout: float = 3600.0,
        api_version: str = V6,
        fetch_url: str | None = None,
        poll_interval: float = 5.0,
    ) -> VideoResult:
        """Poll in this process until the video is done (ETA-aware); raises after ``timeout`` seconds.

        A failed job raises :class:`ModelsLabJobFailedError`, the timeout
        :class:`ModelsLabTimeoutError` (the job may still finish: ModelsLab has no cancel API).
        """
        from modelslab_provider.client.policy import PollPolicy

        return self.client.wait(
            request_id,
            api_version=api_version,
            fetch_url=fetch_url,
            deadline=time.time() + timeout,
            poll=PollPolicy(min_interval=poll_interval, max_interval=max(60.0, poll_interval)),
            limit=f"timeout of {timeout:.0f} s",
        )

    def wallet_balance(self) -> Balance:
        """The account's wallet balance (free)."""
        return self.client.wallet_balance()

    # ------------------------------------------------------------------ lower level (sensor, trigger)

    def submit(self, endpoint: str, payload: Mapping[str, Any]) -> VideoResult:
        """One paid call on ``endpoint`` as given (no ``track_id`` added); prefer the typed methods."""
        return self.client.submit(endpoint, payload)

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
