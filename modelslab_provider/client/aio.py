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

from modelslab_provider.client import core, responses
from modelslab_provider.client.batch import BatchStatus, EntryResult
from modelslab_provider.client.calls import BaseClient
from modelslab_provider.client.core import USER_AGENT, ApiRequest, Balance, ClientSettings, VideoResult
from modelslab_provider.client.errors import ModelsLabError
from modelslab_provider.client.policy import RetryPolicy

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


class AsyncModelsLabClient(BaseClient):
    """Async twin of :class:`~modelslab_provider.client.sync.ModelsLabClient`."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        retry: RetryPolicy | None = None,
        session: aiohttp.ClientSession | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(settings, retry=retry, jitter=jitter)
        self._session = session
        self._timeout: aiohttp.ClientTimeout | None = None

    async def __aenter__(self) -> AsyncModelsLabClient:
        """Hold the loop's pooled session for a whole wait; the last holder to leave closes it."""
        if self._session is None:
            await _acquire()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is None:
            await _release()

    async def submit(self, endpoint: str, payload: Mapping[str, Any]) -> VideoResult:
        return await self._send(*self.submit_call(endpoint, payload))

    async def fetch(
        self, request_id: Any, api_version: str = core.V6, fetch_url: str | None = None
    ) -> VideoResult:
        return await self._send(*self.fetch_call(request_id, api_version, fetch_url))

    async def wallet_balance(self) -> Balance:
        return await self._send(*self.wallet_balance_call())

    async def fetch_batch(self, batch_id: Any, size: int) -> BatchStatus:
        """Poll one batch once (free; transient failures retried)."""
        return await self._send(*self.batch_fetch_call(batch_id, size))

    async def fetch_job(self, job: Mapping[str, Any]) -> list[EntryResult]:
        """One poll of a batch task's job (a batch, or a single request standing in for one entry)."""
        return await self._send(*self.job_call(job))

    async def _send(self, request: ApiRequest, parse: Callable[[dict[str, Any], int], T]) -> T:
        """Send with retries; ``parse`` runs inside the loop, so a rate limit in a 200 body is retried too."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return parse(*await self._send_once(request))
            except ModelsLabError as exc:
                await asyncio.sleep(self.retry_wait(attempt, exc, request))

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
                body = await response.read()
                status, retry_after = response.status, response.headers.get("Retry-After")
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise responses.not_connected(exc) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise responses.no_answer(self.settings.timeout) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise responses.connection_lost(exc) from exc
        return responses.read_answer(request, status, body, retry_after, self.settings.api_key), status
