"""What every ModelsLab trigger shares: the connection, the clock, the poll policy and one event.

A trigger's kwargs are JSON only and hold no secret (the conn id, times, the policy's dict); the
key is looked up in the triggerer, asynchronously, and used only to scrub it from messages. Each
trigger fires exactly one event and never crashes: an unexpected error becomes an ``error`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Hashable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from modelslab_provider.client.core import DEFAULT_CONN_ID, scrub_text
from modelslab_provider.client.errors import ModelsLabTimeoutError
from modelslab_provider.client.policy import RetryPolicy
from modelslab_provider.events import error_message, error_type, load_poll_policy
from modelslab_provider.triggers.task_end import end_event, start_deadline

if TYPE_CHECKING:
    from modelslab_provider.client.aio import AsyncModelsLabClient

T = TypeVar("T")

#: A waiting trigger's progress line ("status processing, ETA ..., poll N") is logged at INFO on the
#: first poll, whenever the state or the expected ready time (by this much) changes, and otherwise at
#: most once per this many seconds; the polls in between log it at DEBUG. In a real triggerer every
#: INFO line wakes the supervisor's loop, which queries the trigger table each time: a line per poll
#: was most of a poll's CPU there (benchmarks/RESULTS.md, "CPU per poll inside a real triggerer").
PROGRESS_INFO_EVERY = 60.0


@dataclasses.dataclass
class ProgressLog:
    """Whether a wait's progress line goes out at INFO or DEBUG (see :data:`PROGRESS_INFO_EVERY`)."""

    logged_at: float | None = None
    state: Hashable = None
    eta: float | None = None

    def is_info(
        self, state: Hashable, now: float, *, eta: float | None = None, notable: bool = False
    ) -> bool:
        """INFO when ``state`` changed, ``eta`` moved, the interval passed, or the poll is ``notable``."""
        changed, self.state = state != self.state, state
        eta_moved = eta is not None and (self.eta is None or abs(eta - self.eta) >= PROGRESS_INFO_EVERY)
        due = self.logged_at is None or now - self.logged_at >= PROGRESS_INFO_EVERY
        if not (changed or eta_moved or due or notable):
            return False
        self.logged_at, self.eta = now, eta
        return True


class Tracker(Protocol):
    """What the base needs of a wait's tracker (:class:`WaitTracker`, :class:`BatchWait`)."""

    started_at: float
    deadline: float | None
    retry: RetryPolicy

    def timed_out(self, now: float) -> bool: ...

    def timeout_error(self, now: float) -> ModelsLabTimeoutError: ...


TrackerT = TypeVar("TrackerT", bound=Tracker)


def is_template(value: Any) -> bool:
    """A Jinja template not rendered yet (a sensor started in the triggerer gets it rendered there)."""
    return isinstance(value, str) and any(mark in value for mark in ("{{", "{%", "{#"))


class ModelsLabTrigger(BaseTrigger, Generic[TrackerT]):
    """Base of the ModelsLab triggers: common kwargs, the client, the deadline and error events.

    A subclass sets ``classpath`` and ``wait_name`` (the words log lines use for what is awaited),
    adds its own kwargs in :meth:`own_kwargs`, builds its tracker in :meth:`tracker` and polls in
    :meth:`poll`.
    """

    classpath: ClassVar[str]
    #: what is awaited, in log lines: "ModelsLab request 123", "ModelsLab batches"
    wait_name: str = "ModelsLab job"

    def __init__(
        self,
        modelslab_conn_id: str = DEFAULT_CONN_ID,
        started_at: float | None = None,
        deadline: float | None = None,
        poll_policy: Mapping[str, Any] | None = None,
        end_task: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        #: how to end the task here when the wait is over (:func:`.task_end.end_spec`); None: resume
        self.end_task = dict(end_task) if end_task else None
        self.modelslab_conn_id = modelslab_conn_id
        # resolved once, so a trigger re-created after a triggerer restart keeps the same clock
        self.started_at = float(time.time() if started_at is None else started_at)
        self.deadline = None if deadline is None else float(deadline)
        self.poll_policy = load_poll_policy(poll_policy)
        #: the key, once looked up in ``run()``; only used to scrub it from error messages
        self._secret: str | None = None

    def own_kwargs(self) -> dict[str, Any]:
        """The subclass's own JSON kwargs (the common ones are added by :meth:`serialize`)."""
        return {}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            self.classpath,
            {
                **self.own_kwargs(),
                "modelslab_conn_id": self.modelslab_conn_id,
                "started_at": self.started_at,
                "deadline": self.deadline,
                "poll_policy": self.poll_policy.to_dict(),
                "end_task": self.end_task,
            },
        )

    def event_ids(self) -> dict[str, Any]:
        """Fields every event of this trigger carries (e.g. the request id)."""
        return {}

    def tracker(self) -> TrackerT:
        """A fresh tracker of the wait, from the kwargs."""
        raise NotImplementedError

    async def poll(self, client: AsyncModelsLabClient, tracker: TrackerT) -> dict[str, Any]:
        """Poll until the outcome is known; return the event's payload."""
        raise NotImplementedError

    def timeout_fields(self, tracker: TrackerT) -> dict[str, Any]:
        """Extra fields of a ``timeout`` event (e.g. what did finish)."""
        return {}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        if self.deadline is None:
            self.deadline = start_deadline(self)
        try:
            tracker = self.tracker()
        except Exception as exc:  # e.g. a rendered template that is no request id
            yield await end_event(self, self.error_event(exc), self.end_task)
            return
        try:
            if tracker.timed_out(time.time()):
                event = self.timeout_event(tracker)
            else:
                async with self.client(tracker) as client:
                    event = await self.poll(client, tracker)
        except Exception as exc:  # one event, never a crashed trigger: the task reads the message
            event = self.error_event(exc)
        yield await end_event(self, event, self.end_task)

    @contextlib.asynccontextmanager
    async def client(self, tracker: Tracker) -> AsyncIterator[AsyncModelsLabClient]:
        """The connection's async client (the settings looked up once for many triggers)."""
        from modelslab_provider.hooks.modelslab import TRIGGER_SETTINGS_MAX_AGE, ModelsLabHook

        hook = ModelsLabHook(
            modelslab_conn_id=self.modelslab_conn_id, settings_max_age=TRIGGER_SETTINGS_MAX_AGE
        )
        client = await hook.aget_client()
        async with client:
            self._secret = client.settings.api_key
            # after a transient error, the first retry comes no later than the policy's usual pace
            tracker.retry = dataclasses.replace(
                client.retry, initial_delay=min(client.retry.initial_delay, self.poll_policy.min_interval)
            )
            yield client

    @staticmethod
    async def before_deadline(call: Awaitable[T], tracker: Tracker) -> T:
        """Await ``call`` (a fetch with the client's retries), cut short at the tracker's deadline."""
        if tracker.deadline is None:
            return await call
        remaining = tracker.deadline - time.time()
        if remaining <= 0:
            if isinstance(call, asyncio.Future):
                call.cancel()
            elif asyncio.iscoroutine(call):
                call.close()
            raise tracker.timeout_error(time.time())
        try:
            async with asyncio.timeout(remaining):
                return await call
        except TimeoutError:
            raise tracker.timeout_error(time.time()) from None

    def error_event(self, exc: BaseException) -> dict[str, Any]:
        """An ``error`` event: the message a user reads (key scrubbed) and its ``error_type``."""
        message = error_message(exc, self.modelslab_conn_id)
        message = scrub_text(message, self._secret)
        kind = error_type(exc)
        if kind == "unexpected":
            self.log.error("Waiting for %s failed unexpectedly", self.wait_name, exc_info=exc)
        else:
            self.log.error("Waiting for %s failed: %s", self.wait_name, message)
        return {"status": "error", **self.event_ids(), "message": message, "error_type": kind}

    def timeout_event(self, tracker: TrackerT) -> dict[str, Any]:
        """A ``timeout`` event naming the limit that was hit."""
        message = str(tracker.timeout_error(time.time()))
        self.log.warning("%s", message)
        return {"status": "timeout", **self.event_ids(), "message": message, **self.timeout_fields(tracker)}
