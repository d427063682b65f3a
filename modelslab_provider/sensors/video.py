"""VideoFetchSensor: waits for a ModelsLab video in poke, reschedule or deferrable mode.

Every poke is one read-only fetch, judged by the same
:class:`~modelslab_provider.client.policy.WaitTracker` the trigger and the sync wait use. In
deferrable mode the sensor pokes once, then hands the wait to
:class:`~modelslab_provider.triggers.video.VideoFetchTrigger`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from modelslab_provider.client.core import (
    DEFAULT_CONN_ID,
    V6,
    VideoResult,
    documented_fetch_url,
    normalise_request_id,
)
from modelslab_provider.client.errors import ModelsLabError, ModelsLabTimeoutError, ModelsLabTransientError
from modelslab_provider.client.policy import Action, PollPolicy, WaitTracker
from modelslab_provider.events import error_message, failure, load_poll_policy, urls_from_event, wait_deadline
from modelslab_provider.version_compat import AIRFLOW_V_3_3_PLUS, airflow_version

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from modelslab_provider.hooks.modelslab import ModelsLabHook

#: prefix of the ``task_state_store`` key holding the wait's counters between pokes
STATE_KEY = "modelslab_wait"
#: the ``next_method`` and ``error`` with which Airflow resumes a task whose deferral timed out
_DEFERRAL_FAILED, _DEFERRAL_TIMEOUTS = "__fail__", ("Trigger timeout", "Trigger/execution timeout")


def state_key(request_id: str, try_number: Any) -> str:
    """The store key of one try's counters: Airflow's store rows are shared by every try."""
    return f"{STATE_KEY}:{request_id}:{try_number if isinstance(try_number, int) else 0}"


class VideoFetchSensor(BaseSensorOperator):
    """Wait until a ModelsLab video request is done; XCom ``return_value`` is the list of URLs.

    :param request_id: the ModelsLab request id (templated; an int or a string), e.g.
        ``"{{ ti.xcom_pull('generate', key='request_id') }}"``.
    :param modelslab_conn_id: the connection holding the API key.
    :param api_version: ``v6`` (default) or ``v7`` (video-fusion): the API that created the request.
    :param fetch_url: the submit response's ``fetch_result`` (templated, optional); polled as is
        when it is a documented fetch path of this request on the connection's origin.
    :param deferrable: poke once, then wait in the triggerer (no worker slot held); the trigger
        polls no more often than ``poke_interval`` (when it is given, or when ``poll_policy`` is not).
    :param end_from_trigger: when the wait is over, end the task in the triggerer (no worker
        start) where Airflow can (3.3+, docs/waiting-modes.md); False: always resume on a worker.
    :param start_from_trigger: start in the triggerer: no worker ever runs the sensor (Airflow
        3.3+ renders templated ``request_id``/``api_version`` there; older lines need literals).
    :param poll_policy: advanced spacing of the trigger's polls (a :class:`PollPolicy` or its
        dict); its ``max_empty_success_polls`` bounds "success without URLs" in every mode. Given
        without ``poke_interval``, it is used as is (Airflow's default ``poke_interval`` of 60 s
        does not override it).

    Transient errors only end the wait through ``timeout``; a failed job, an unknown request id
    and a refused key fail at once (``AirflowFailException``). Counting "success without URLs"
    across pokes needs Airflow 3.3's ``task_state_store``, keyed per try here.
    """

    template_fields: Sequence[str] = ("request_id", "fetch_url", "api_version", "modelslab_conn_id")
    ui_color = "#f4e6ff"

    def __init__(
        self,
        *,
        request_id: str | int,
        modelslab_conn_id: str = DEFAULT_CONN_ID,
        api_version: str = V6,
        fetch_url: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_policy: PollPolicy | Mapping[str, Any] | None = None,
        end_from_trigger: bool = True,
        start_from_trigger: bool = False,
        **kwargs: Any,
    ) -> None:
        # poke_interval floors the trigger's polls unless only the advanced poll_policy was given
        self._poke_floor = "poke_interval" in kwargs or poll_policy is None
        super().__init__(**kwargs)
        self.request_id = request_id
        self.modelslab_conn_id = modelslab_conn_id
        self.api_version = api_version
        self.fetch_url = fetch_url
        self.deferrable = deferrable
        # kept as a plain dict: it is JSON for the trigger and cheap to serialize with the DAG
        self.poll_policy = load_poll_policy(poll_policy).to_dict()
        self.end_in_triggerer = end_from_trigger  # not end_from_trigger: see ModelsLabBaseOperator
        self.start_from_trigger = start_from_trigger
        if start_from_trigger:
            from modelslab_provider.sensors.start import configure

            configure(self)

    @cached_property
    def hook(self) -> ModelsLabHook:
        from modelslab_provider.hooks.modelslab import ModelsLabHook

        return ModelsLabHook(modelslab_conn_id=self.modelslab_conn_id)

    # ------------------------------------------------------------------ poke / reschedule

    def poke(self, context: Context) -> bool | PokeReturnValue:
        done, _ = self._poke_once(context)
        return done

    def _poke_once(self, context: Context) -> tuple[bool | PokeReturnValue, WaitTracker]:
        """One fetch and its decision; returns the poke result and the tracker (for deferral)."""
        try:
            request_id = normalise_request_id(self.request_id)
        except ModelsLabError as exc:
            raise AirflowFailException(str(exc)) from None
        store = context.get("task_state_store")
        ti = context.get("ti")
        tracker = self._tracker(request_id, store, ti)
        result: VideoResult | None = None
        try:
            result = self.hook.fetch(
                request_id, self.api_version, self._fetch_url(request_id), deadline=tracker.deadline
            )
            decision = tracker.on_result(result, time.time())
        except ModelsLabTimeoutError:
            # the poke ran into the sensor's own limit: Airflow's timeout check ends the wait
            self.log.warning("ModelsLab request %s: the poke reached the sensor's time limit", request_id)
            return False, tracker
        except ModelsLabTransientError as exc:
            decision = tracker.on_error(exc, time.time())
            self.log.warning(
                "ModelsLab request %s: poke failed (%s); trying again at the next poke", request_id, exc
            )
        except ModelsLabError as exc:
            raise failure(exc, self.modelslab_conn_id) from None
        except Exception as exc:  # e.g. a missing connection: name it, never a bare traceback
            raise failure(exc, self.modelslab_conn_id) from exc
        self._save(tracker, store, ti)

        if decision.action is Action.DONE:
            assert decision.result is not None
            urls = list(decision.result.urls)
            self.log.info(
                "ModelsLab request %s is ready after %d poke(s): %d output URL(s)",
                request_id,
                tracker.polls,
                len(urls),
            )
            return PokeReturnValue(is_done=True, xcom_value=urls), tracker
        if decision.action is Action.FAIL:
            assert decision.error is not None
            if isinstance(decision.error, ModelsLabTimeoutError):
                return False, tracker
            self.log.error("%s", decision.error)
            raise AirflowFailException(error_message(decision.error, self.modelslab_conn_id))
        if result is not None:
            self.log.info(*tracker.describe(result, time.time()))
            if result.awaiting_links and store is None:
                self.log.warning(
                    "This Airflow has no task_state_store to count empty successes, so the sensor "
                    "keeps poking until its timeout"
                )
        return False, tracker

    def _fetch_url(self, request_id: str) -> str | None:
        """``fetch_url`` when it is a documented fetch path of this request, else None (warned)."""
        if not self.fetch_url:
            return None
        base_url = self.hook.client.settings.base_url
        if documented_fetch_url(str(self.fetch_url), base_url, request_id):
            return str(self.fetch_url)
        self.log.warning(
            "Ignoring fetch_url: it is not a documented fetch path (api/v6/video/fetch/%s or "
            "api/v7/video-fusion/fetch/%s) on %s; polling the %s fetch path instead",
            request_id,
            request_id,
            base_url,
            self.api_version,
        )
        return None

    def _tracker(self, request_id: str, store: Any, ti: Any) -> WaitTracker:
        saved = self._read_state(request_id, store, ti)
        started = float(saved.get("started_at", time.time()))
        # no fetch (retries included) runs past the sensor's timeout; Airflow's own checks between
        # pokes (timeout, execution_timeout) then end the wait
        return WaitTracker(
            request_id=request_id,
            started_at=started,
            deadline=started + self.timeout,
            poll=PollPolicy(**self.poll_policy),
            polls=int(saved.get("polls", 0)),
            empty_success_polls=int(saved.get("empty_success_polls", 0)),
            limit=f"timeout of {self.timeout:.0f} s",
        )

    @staticmethod
    def _read_state(request_id: str, store: Any, ti: Any) -> dict[str, Any]:
        if store is None:
            return {}
        try:
            saved = store.get(state_key(request_id, getattr(ti, "try_number", None)))
        except Exception:  # the counters are a nicety: never fail a poke over them
            return {}
        return saved if isinstance(saved, dict) else {}

    def _save(self, tracker: WaitTracker, store: Any, ti: Any) -> None:
        if store is None:
            return
        state = {
            "started_at": tracker.started_at,
            "polls": tracker.polls,
            "empty_success_polls": tracker.empty_success_polls,
        }
        try:
            key = state_key(tracker.request_id, getattr(ti, "try_number", None))
            store.set(key, state, retention=timedelta(days=8))
        except Exception as exc:
            self.log.debug("Could not save the wait counters: %s", exc)

    # ------------------------------------------------------------------ deferrable

    def _trigger_policy(self) -> dict[str, Any]:
        """``poll_policy`` with ``poke_interval`` as the floor of the trigger's poll spacing."""
        policy = PollPolicy(**self.poll_policy)
        floor = float(self.poke_interval)
        if self._poke_floor and floor > policy.min_interval:
            policy = dataclasses.replace(
                policy,
                min_interval=floor,
                interval=max(policy.interval, floor),
                max_interval=max(policy.max_interval, floor),
            )
        return policy.to_dict()

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        if self.start_from_trigger and not AIRFLOW_V_3_3_PLUS:
            self.log.info(
                "start_from_trigger=True: Airflow %s starts every task on a worker (3.3 starts this "
                "one in the triggerer); it defers at once",
                ".".join(map(str, airflow_version())),
            )
        started, started_wall = time.monotonic(), time.time()
        try:
            done, tracker = self._poke_once(context)
        except AirflowFailException as exc:
            if self.soft_fail or self.never_fail:
                raise AirflowSkipException(f"Skipping (soft_fail/never_fail): {exc}") from exc
            raise
        if isinstance(done, PokeReturnValue):
            self.log.info("Success criteria met. Exiting.")
            return done.xcom_value
        now = time.time()
        deadline, limit = wait_deadline(
            now + self.timeout - (time.monotonic() - started),
            self.timeout,
            self.execution_timeout,
            started_wall,  # Airflow counts execution_timeout from execute, not from start_date
            now,
        )
        remaining = deadline - now
        if remaining <= 0:
            message = f"Sensor has timed out after its first poke ({limit})."
            if self.soft_fail:
                raise AirflowSkipException(message)
            raise AirflowSensorTimeout(message)
        # imported here: the trigger module pulls in airflow.triggers.base, which DAG parsing
        # does not need (benchmarks/parse_cost.py)
        from modelslab_provider.triggers.task_end import end_spec
        from modelslab_provider.triggers.video import VideoFetchTrigger

        trigger = VideoFetchTrigger(
            request_id=tracker.request_id,
            modelslab_conn_id=self.modelslab_conn_id,
            api_version=self.api_version,
            fetch_url=self._fetch_url(tracker.request_id),
            started_at=tracker.started_at,
            eta=tracker.eta,
            deadline=deadline,
            poll_policy=self._trigger_policy(),
            limit=limit,
            end_task=end_spec(self, context, "sensor"),
        )
        self.log.info(
            "ModelsLab request %s is not ready; deferring to the triggerer for up to %.0f s (%s)",
            tracker.request_id,
            remaining,
            limit,
        )
        # the scheduler's own deferral timeout comes later than the trigger's deadline, so the
        # trigger's timeout event normally ends the wait (and, with end_task, a soft_fail skip
        # ends in the triggerer); if the trigger is stalled the scheduler ends it, and
        # resume_execution turns that into the same sensor timeout
        grace = timedelta(seconds=remaining + self.deferral_grace)
        self.defer(trigger=trigger, method_name="execute_complete", timeout=grace)

    #: seconds the scheduler waits past the trigger's deadline before it ends a stalled deferral
    deferral_grace: float = 60.0

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """End a deferred wait as poke mode would: a timeout is ``AirflowSensorTimeout`` (no retries),
        skipped with ``soft_fail``/``never_fail``, whether the trigger or the scheduler saw it first."""
        try:
            if next_method == _DEFERRAL_FAILED and (next_kwargs or {}).get("error") in _DEFERRAL_TIMEOUTS:
                limits = f"timeout={self.timeout:.0f} s" + (
                    f", execution_timeout={self.execution_timeout.total_seconds():.0f} s"
                    if self.execution_timeout
                    else ""
                )
                raise AirflowSensorTimeout(
                    f"Sensor has timed out: the triggerer did not report by the sensor's deadline "
                    f"({limits}); the scheduler ended the deferral {self.deferral_grace:.0f} s after it."
                )
            return super().resume_execution(next_method, next_kwargs, context)
        except (AirflowSensorTimeout, AirflowFailException) as exc:
            if self.soft_fail or self.never_fail:
                raise AirflowSkipException(f"Skipping (soft_fail/never_fail): {exc}") from exc
            raise

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> list[str]:
        """Resume after the trigger: the URLs, or the failure it reported."""
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
