"""Async ModelsLab client on ``aiohttp``, for the triggerer. I/O only: decisions live in the core.

One ``aiohttp.ClientSession`` (and so one keep-alive connection pool) is shared by every client
on the same event loop: thousands of waiting triggers reuse a few sockets instead of opening one
per poll.
"""

from __future__ import annotations

import asyncio
import logging
import random
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from modelslab_provider.client import batch, core
from modelslab_provider.client.batch import BatchStatus
from modelslab_provider.client.core import ApiRequest, Balance, ClientSettings, VideoResult
from modelslab_provider.client.errors import ModelsLabError, ModelsLabTransientError
from modelslab_provider.client.policy import RetryPolicy
from modelslab_provider.client.submit import prepare_payload
from modelslab_provider.client.sync import USER_AGENT, describe_exception, retry_delay

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger(__name__)
T = TypeVar("T")

#: connections kept open per event loop; more concurrent polls queue for a free one
POOL_SIZE = 64
_JSON_HEADERS = {"Content-Type": "application/json"}

_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = (
    weakref.WeakKeyDictionary()
)


def shared_session() -> aiohttp.ClientSession:
    """The pooled session of the running event loop, created on first use."""
    import aiohttp

    loop = asyncio.get_running_loop()
    session = _sessions.get(loop)
    if session is None or session.closed:
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=POOL_SIZE, keepalive_timeout=60, ttl_dns_cache=300),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            skip_auto_headers=("Accept-Encoding",),
        )
        _sessions[loop] = session
    return session


_leases: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int] = weakref.WeakKeyDictionary()


async def _acquire() -> None:
    loop = asyncio.get_running_loop()
    _leases[loop] = _leases.get(loop, 0) + 1


async def _release() -> None:
    """Close the pool when its last user is done, so a short-lived loop leaves no open session."""
    loop = asyncio.get_running_loop()
    _leases[loop] = max(_leases.get(loop, 1) - 1, 0)
    if _leases[loop] == 0:
        await close_shared_session()


async def close_shared_session() -> None:
    """Close the running loop's pooled session (tests and benchmarks call this at the end)."""
    session = _sessions.pop(asyncio.get_running_loop(), None)
    if session is not None and not session.closed:
        await session.close()


class AsyncModelsLabClient:
    """Async twin of :class:`~modelslab_provider.client.sync.ModelsLabClient`."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        retry: RetryPolicy | None = None,
        session: aiohttp.ClientSession | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.retry = retry or RetryPolicy(max_attempts=settings.max_retries)
        self._session = session
        self._jitter = jitter
        self._timeout: aiohttp.ClientTimeout | None = None
        #: the last fetch request built: a waiting trigger polls the same one every time
        self._last_fetch: tuple[tuple[Any, str, str | None], ApiRequest] | None = None

    def __repr__(self) -> str:
        return f"AsyncModelsLabClient(base_url={self.settings.base_url!r})"

    async def __aenter__(self) -> AsyncModelsLabClient:
        """Hold the loop's pooled session for a whole wait; the last holder to leave closes it."""
        if self._session is None:
            await _acquire()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is None:
            await _release()

    async def submit(self, endpoint: str, payload: Mapping[str, Any]) -> VideoResult:
        request = core.build_submit(self.settings, endpoint, prepare_payload(endpoint, payload))
        return await self._send(request, core.normalise_response)

    async def fetch(
        self, request_id: Any, api_version: str = core.V6, fetch_url: str | None = None
    ) -> VideoResult:
        key = (request_id, api_version, fetch_url)
        if self._last_fetch is not None and self._last_fetch[0] == key:
            request = self._last_fetch[1]
        else:
            request = core.build_fetch(self.settings, request_id, api_version, fetch_url)
            self._last_fetch = (key, request)
        return await self._send(request, core.normalise_response)

    async def wallet_balance(self) -> Balance:
        return await self._send(core.build_wallet_balance(self.settings), core.parse_balance)

    async def fetch_batch(self, batch_id: Any, size: int) -> BatchStatus:
        """Poll one batch once (free; transient failures retried)."""
        bid = core.normalise_request_id(batch_id)
        return await self._send(
            batch.build_batch_fetch(self.settings, bid), lambda d, c: batch.parse_batch_fetch(d, bid, size, c)
        )

    async def _send(self, request: ApiRequest, parse: Callable[[dict[str, Any], int], T]) -> T:
        """Send with retries; ``parse`` runs inside the loop, so a rate limit in a 200 body is retried too."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return parse(*await self._send_once(request))
            except ModelsLabError as exc:
                await asyncio.sleep(retry_delay(self.retry, attempt, exc, request, self._jitter()))

    async def _send_once(self, request: ApiRequest) -> tuple[dict[str, Any], int]:
        import aiohttp

        session = self._session or shared_session()
        timeout = self._timeout
        if timeout is None:
            timeout = self._timeout = aiohttp.ClientTimeout(
                total=self.settings.timeout, connect=min(10.0, self.settings.timeout)
            )
        try:
            async with session.request(
                request.method,
                request.url,
                data=request.encoded_body(),
                headers=_JSON_HEADERS,
                timeout=timeout,
                allow_redirects=False,
            ) as response:
                body = core.scrub_secret(await response.read(), self.settings.api_key)
                status, retry_after = response.status, response.headers.get("Retry-After")
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise ModelsLabTransientError(
                f"Could not connect to ModelsLab: {describe_exception(exc)}"
            ) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise ModelsLabTransientError(
                f"ModelsLab did not answer within {self.settings.timeout:g} s", ambiguous=True
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise ModelsLabTransientError(
                f"Connection to ModelsLab failed: {describe_exception(exc)}", ambiguous=True
            ) from exc
        if 300 <= status < 400:
            raise ModelsLabError(
                f"ModelsLab redirected {core.redact_url(request.url)} (HTTP {status}); "
                "check the connection's Base URL. The key is not sent to redirect targets."
            )
        return core.decode_response(status, body, retry_after_header=retry_after), status
