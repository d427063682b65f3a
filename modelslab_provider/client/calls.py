"""What the sync and async clients share: the calls they make and the decision between attempts.

No I/O here. For each API call :class:`BaseClient` builds a :class:`Call` (the request, and the
parser of its decoded answer); :meth:`BaseClient.retry_wait` decides the wait before another
attempt. ``ModelsLabClient`` (``requests``) and ``AsyncModelsLabClient`` (``aiohttp``) subclass
it and only send, sleep, and map their library's failures to typed errors.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any, Generic, NamedTuple, TypeVar

from modelslab_provider.client import batch, core, responses
from modelslab_provider.client.batch import BatchStatus, EntryResult
from modelslab_provider.client.core import ApiRequest, Balance, ClientSettings, VideoResult
from modelslab_provider.client.errors import ModelsLabError
from modelslab_provider.client.policy import RetryPolicy, retry_delay
from modelslab_provider.client.submit import prepare_payload

T = TypeVar("T")


class Call(NamedTuple, Generic[T]):
    """One API call: the request to send, and what turns its decoded answer into a result."""

    request: ApiRequest
    parse: Callable[[dict[str, Any], int], T]


class BaseClient:
    """Settings, retry policy and jitter of a client, and the calls it makes (no I/O)."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        retry: RetryPolicy | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self.retry = retry or RetryPolicy(max_attempts=settings.max_retries)
        self._jitter = jitter
        #: the last fetch built: a wait polls the same request every time
        self._last_fetch: tuple[tuple[Any, str, str | None], Call[VideoResult]] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.settings.base_url!r})"

    def submit_call(self, endpoint: str, payload: Mapping[str, Any]) -> Call[VideoResult]:
        """A paid generation, the documented defaults filled in (no ``track_id`` added)."""
        request = core.build_submit(self.settings, endpoint, prepare_payload(endpoint, payload))
        return Call(request, responses.normalise_response)

    def fetch_call(
        self, request_id: Any, api_version: str = core.V6, fetch_url: str | None = None
    ) -> Call[VideoResult]:
        """A free poll of one request (built once per wait, then reused)."""
        key = (request_id, api_version, fetch_url)
        if self._last_fetch is None or self._last_fetch[0] != key:
            request = core.build_fetch(self.settings, request_id, api_version, fetch_url)
            self._last_fetch = (key, Call(request, responses.normalise_response))
        return self._last_fetch[1]

    def wallet_balance_call(self) -> Call[Balance]:
        return Call(core.build_wallet_balance(self.settings), responses.parse_balance)

    def batch_fetch_call(self, batch_id: Any, size: int) -> Call[BatchStatus]:
        """A free poll of one Video Batch of ``size`` entries."""
        bid = core.normalise_request_id(batch_id)
        return Call(
            batch.build_batch_fetch(self.settings, bid), lambda d, c: batch.parse_batch_fetch(d, bid, size, c)
        )

    def job_call(self, job: Mapping[str, Any]) -> Call[list[EntryResult]]:
        """A poll of one job of a batch task: a Video Batch, or a single request standing for one entry.

        ``job`` is one of the batch trigger's jobs (``id``, ``kind``, ``size``, ``api_version``,
        ``fetch_url``, ``track_id``); the answer is that job's entries.
        """
        if job["kind"] == "batch":
            request, parse_batch = self.batch_fetch_call(job["id"], job["size"])
            return Call(request, lambda d, c: list(parse_batch(d, c).entries))
        request, parse_one = self.fetch_call(job["id"], job["api_version"], job["fetch_url"])
        track_id = job.get("track_id")
        return Call(request, lambda d, c: [batch.entry_from_single(parse_one(d, c), track_id)])

    def retry_wait(
        self,
        attempt: int,
        error: ModelsLabError,
        request: ApiRequest,
        *,
        retry: RetryPolicy | None = None,
        now: float = 0.0,
        deadline: float | None = None,
    ) -> float:
        """The wait before another attempt of ``request``, or ``error`` raised (see :func:`retry_delay`)."""
        return retry_delay(
            retry or self.retry, attempt, error, request, self._jitter(), now=now, deadline=deadline
        )
