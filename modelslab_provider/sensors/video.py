"""VideoFetchSensor: waits for a ModelsLab video in poke, reschedule or deferrable mode.

Every poke is one read-only fetch; what it means (done, failed, keep waiting) is decided by the
same :class:`~modelslab_provider.client.policy.WaitTracker` the trigger and the sync wait use.
In deferrable mode the sensor pokes once, then hands the wait to
:class:`~modelslab_provider.triggers.video.VideoFetchTrigger` with its remaining ``timeout``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from modelslab_provider.client.core import V6, Status, VideoResult, normalise_request_id
from modelslab_provider.client.errors import ModelsLabError, ModelsLabTransientError
from modelslab_provider.client.policy import Action, PollPolicy, WaitTracker

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

#: prefix of the ``task_state_store`` key holding the wait's counters between pokes
STATE_KEY = "modelslab_wait"


def _load_policy(poll_policy: PollPolicy | Mapping[str, Any] | None) -> PollPolicy:
    if poll_policy is None:
        return PollPolicy()
    if isinstance(poll_policy, PollPolicy):
        return poll_policy
    return PollPolicy(**dict(poll_policy))


class VideoFetchSensor(BaseSensorOperator):
    """Wait until a ModelsLab video request is done; its XCom ``return_value`` is the list of URLs.

    :param request_id: the ModelsLab request id (templated; an int or a string), e.g.
        ``"{{ ti.xcom_pull('generate', key='request_id') }}"``.
    :param modelslab_conn_id: the connection holding the API key.
    :param api_version: ``v6`` (default) or ``v7`` (video-fusion): the API that created the request.
        Not auto-detected: whether the two fetch paths accept each other's ids is undocumented,
        and a wrong guess would read as "request not found". ``fetch_url`` settles it instead.
    :param fetch_url: the submit response's ``fetch_result`` (templated, optional); when it is on
        the connection's origin it is polled as is, so it always matches the API version.
    :param deferrable: poke once, then wait in the triggerer (no worker slot held).
    :param poll_policy: how the trigger spaces its polls (a :class:`PollPolicy` or its dict);
        in poke/reschedule mode ``poke_interval`` spaces the pokes, as on any sensor. Its
        ``max_empty_success_polls`` bounds "success without URLs" in every mode.

    Transient errors (5xx, HTML bodies, timeouts, rate limits) only end the wait through the
    sensor's ``timeout``. A terminal job failure, an unknown request id and a refused key raise
    :class:`AirflowFailException` at once (``soft_fail`` turns these into a skip, as on any sensor).

    Counting "success without URLs" across pokes needs state that survives a reschedule; nothing
    is kept on ``self``. On Airflow >= 3.3 the counters live in ``task_state_store`` (scoped to
    the try). Without it, such a job is polled until the sensor's ``timeout``, with a warning on
    each poke.
    """

    template_fields: Sequence[str] = ("request_id", "fetch_url", "api_version", "modelslab_conn_id")
    ui_color = "#f4e6ff"

    def __init__(
        self,
        *,
        request_id: str | int,
        modelslab_conn_id: str = "modelslab_default",
        api_version: str = V6,
        fetch_url: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_policy: PollPolicy | Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.request_id = request_id
        self.modelslab_conn_id = modelslab_conn_id
        self.api_version = api_version
        self.fetch_url = fetch_url
        self.deferrable = deferrable
        # kept as a plain dict: it is JSON for the trigger and cheap to serialize with the DAG
        self.poll_policy = _load_policy(poll_policy).to_dict()

    # ------------------------------------------------------------------ poke / reschedule

    def poke(self, context: Context) -> bool | PokeReturnValue:
        done, _ = self._poke_once(context)
        return done

    def _poke_once(self, context: Context) -> tuple[bool | PokeReturnValue, WaitTracker]:
        """One fetch and its decision; returns the poke result and the tracker (for deferral)."""
        from modelslab_provider.hooks.modelslab import ModelsLabHook
        from modelslab_provider.triggers.video import error_message

        try:
            request_id = normalise_request_id(self.request_id)
        except ModelsLabError as exc:
            raise AirflowFailException(str(exc)) from None
        store = context.get("task_state_store")
        tracker = self._tracker(request_id, store)
        result: VideoResult | None = None
        try:
            result = ModelsLabHook(modelslab_conn_id=self.modelslab_conn_id).fetch(
                request_id, self.api_version, self.fetch_url
            )
            decision = tracker.on_result(result, time.time())
        except ModelsLabTransientError as exc:
            decision = tracker.on_error(exc, time.time())
            self.log.warning(
                "ModelsLab request %s: poke failed (%s); trying again at the next poke", request_id, exc
            )
        except ModelsLabError as exc:
            raise AirflowFailException(error_message(exc, self.modelslab_conn_id)) from None
        self._save(tracker, store)

        if decision.action is Action.DONE:
            assert decision.result is not None
            urls = list(decision.result.urls)
            self.log.info(
                "ModelsLab request %s is ready (%s): %d output URL(s)",
                request_id,
                self._progress(tracker, store is not None),
                len(urls),
            )
            return PokeReturnValue(is_done=True, xcom_value=urls), tracker
        if decision.action is Action.FAIL:
            assert decision.error is not None
            self.log.error("%s", decision.error)
            raise AirflowFailException(error_message(decision.error, self.modelslab_conn_id))
        if result is not None:
            self._log_waiting(request_id, result, tracker, store is not None)
        return False, tracker

    def _tracker(self, request_id: str, store: Any) -> WaitTracker:
        saved = self._read_state(request_id, store)
        return WaitTracker(
            request_id=request_id,
            started_at=float(saved.get("started_at", time.time())),
            poll=PollPolicy(**self.poll_policy),
            polls=int(saved.get("polls", 0)),
            empty_success_polls=int(saved.get("empty_success_polls", 0)),
        )

    @staticmethod
    def _read_state(request_id: str, store: Any) -> dict[str, Any]:
        if store is None:
            return {}
        try:
            saved = store.get(f"{STATE_KEY}:{request_id}")
        except Exception:  # the counters are a nicety: never fail a poke over them
            return {}
        return saved if isinstance(saved, dict) else {}

    def _save(self, tracker: WaitTracker, store: Any) -> None:
        if store is None:
            return
        state = {
            "started_at": tracker.started_at,
            "polls": tracker.polls,
            "empty_success_polls": tracker.empty_success_polls,
        }
        try:
            store.set(f"{STATE_KEY}:{tracker.request_id}", state, retention=timedelta(days=8))
        except Exception as exc:
            self.log.debug("Could not save the wait counters: %s", exc)

    @staticmethod
    def _progress(tracker: WaitTracker, counted: bool) -> str:
        if not counted:
            return "poke count not tracked"
        return f"poke {tracker.polls}, {time.time() - tracker.started_at:.0f} s since the first poke"

    def _log_waiting(self, request_id: str, result: VideoResult, tracker: WaitTracker, counted: bool) -> None:
        if result.unknown_status:
            self.log.warning(
                "ModelsLab request %s answered an unknown status %r; treating it as still running",
                request_id,
                result.raw_status,
            )
        if result.awaiting_links:
            if counted:
                self.log.warning(
                    "ModelsLab request %s: status success but no output URL yet (%d of %d pokes allowed)",
                    request_id,
                    tracker.empty_success_polls,
                    tracker.poll.max_empty_success_polls,
                )
            else:
                self.log.warning(
                    "ModelsLab request %s: status success but no output URL yet; this Airflow has no "
                    "task_state_store to count such pokes, so the sensor keeps poking until its timeout",
                    request_id,
                )
            return
        eta = "unknown" if result.eta is None else f"{result.eta:.0f} s"
        self.log.info(
            "ModelsLab request %s: status %s, ETA %s, %s",
            request_id,
            result.raw_status if result.status is Status.RUNNING else result.status,
            eta,
            self._progress(tracker, counted),
        )

    # ------------------------------------------------------------------ deferrable

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        started = time.monotonic()
        try:
            done, tracker = self._poke_once(context)
        except AirflowFailException as exc:
            if self.soft_fail or self.never_fail:
                raise AirflowSkipException(f"Skipping (soft_fail/never_fail): {exc}") from exc
            raise
        if isinstance(done, PokeReturnValue):
            self.log.info("Success criteria met. Exiting.")
            return done.xcom_value
        remaining = self.timeout - (time.monotonic() - started)
        if remaining <= 0:
            message = f"Sensor has timed out after its first poke (timeout {self.timeout} s)."
            if self.soft_fail:
                raise AirflowSkipException(message)
            raise AirflowSensorTimeout(message)
        # imported here: the trigger module pulls in airflow.triggers.base, which DAG parsing
        # does not need (benchmarks/parse_cost.py)
        from modelslab_provider.triggers.video import VideoFetchTrigger

        trigger = VideoFetchTrigger(
            request_id=tracker.request_id,
            modelslab_conn_id=self.modelslab_conn_id,
            api_version=self.api_version,
            fetch_url=self.fetch_url,
            started_at=tracker.started_at,
            eta=tracker.eta,
            deadline=time.time() + remaining,
            poll_policy=self.poll_policy,
        )
        self.log.info(
            "ModelsLab request %s is not ready; deferring to the triggerer for up to %.0f s",
            tracker.request_id,
            remaining,
        )
        self.defer(trigger=trigger, method_name="execute_complete", timeout=timedelta(seconds=remaining))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> list[str]:
        """Resume after the trigger: the URLs, or the failure it reported."""
        from modelslab_provider.triggers.video import urls_from_event

        urls = urls_from_event(event, conn_id=self.modelslab_conn_id, timeout_exception=AirflowSensorTimeout)
        assert isinstance(event, dict)
        self.log.info(
            "ModelsLab request %s is ready after %s polls, %s s: %d output URL(s)",
            event.get("request_id"),
            event.get("polls"),
            event.get("elapsed"),
            len(urls),
        )
        return urls
