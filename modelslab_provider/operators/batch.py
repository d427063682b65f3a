"""ModelsLabVideoBatchOperator: many videos on one model through ModelsLab's Video Batch API.

Each batch entry costs half of the matching single endpoint
(https://docs.modelslab.com/video-api/video-batch). The operator:

1. takes ``prompts`` (strings) or ``requests`` (dicts), from a template or an upstream task;
   an empty list skips the task;
2. splits more than 20 inputs into balanced batches of 3 to 20 (21 -> 11 + 10), validates every
   batch before the first submit, and submits each batch once; 1 or 2 inputs go to the model's
   full-price single endpoint (Text/Image to Video Ultra) with a warning, or fail at once for a
   model with no documented single endpoint;
3. after each submit, pushes the ids to XCom (``batch_ids``, or ``request_ids`` for single
   submits) and, on Airflow 3.3+, to ``task_state_store``, so a retry of the task reconnects to the
   batches already submitted and submits only the ones that are missing;
4. waits for all of them with one fetch per batch per poll, in the worker or deferred to one
   :class:`~modelslab_provider.triggers.batch.BatchFetchTrigger`;
5. returns one list of URLs per input, in input order (``None`` for a failed entry with
   ``allow_partial_failure=True``) and pushes XCom ``results``: one dict per input with
   ``index``, ``request_id``, ``status``, ``urls``, ``message``, ``refunded``, ``track_id`` and
   ``batch_id``.

Paying once: a batch submit is repeated automatically only when it provably never reached
ModelsLab (connection refused, DNS, connect timeout, HTTP 429). A 5xx, a read timeout, a dropped
connection or an unreadable answer may hide an accepted batch: the task fails without retry and
names the entries' ``track_id`` values to look for. Every entry carries a ``track_id`` (its own,
the ``defaults``', the top-level one, or one derived from the task instance and the input's index).

ModelsLab calls ``webhook`` once per entry, best effort; the operator's polling stays the source of
truth, as ModelsLab recommends.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, TypeVar

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSkipException,
    BaseOperator,
    conf,
)

from modelslab_provider.client import batch as core_batch
from modelslab_provider.client.batch import BatchWait, EntryResult, InputResult
from modelslab_provider.client.core import Status
from modelslab_provider.client.errors import (
    ModelsLabAuthError,
    ModelsLabConfigError,
    ModelsLabError,
    ModelsLabNotFoundError,
    ModelsLabRateLimitError,
    ModelsLabRequestError,
    ModelsLabTimeoutError,
    refused_key_message,
)
from modelslab_provider.client.policy import Action, PaidCallRetryPolicy, PollPolicy, never_reached
from modelslab_provider.hooks.modelslab import ModelsLabHook
from modelslab_provider.version_compat import AIRFLOW_V_3_3_PLUS

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

T = TypeVar("T")

XCOM_BATCH_IDS = "batch_ids"
XCOM_REQUEST_IDS = "request_ids"
XCOM_RESULTS = "results"

#: ``task_state_store`` key of the submitted jobs; renaming it breaks in-flight retries
STATE_KEY = "modelslab_batches"


def _seconds(value: float | timedelta, name: str) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise ValueError(f"{name} must be a positive number of seconds or a timedelta, got {value!r}")
    return float(seconds)


class ModelsLabVideoBatchOperator(BaseOperator):
    """Generate many videos on one model with ModelsLab's Video Batch API (half price per video).

    :param model_id: one of ``wan2.2``, ``ltx-2.3``, ``h3-minimax-t2v``, ``h3-minimax-r2v``,
        ``h3-minimax-start-end-frame`` (templated).
    :param prompts: a list of prompts, one video each (templated; an upstream task's output works).
    :param requests: instead of ``prompts``, a list of dicts of API parameters, one video each; an
        entry with ``init_image`` is image-to-video (templated; XComArg works).
    :param defaults: parameters merged under every entry; an entry's own value wins (templated).
    :param track_id: top-level track id inherited by entries without one (templated).
    :param webhook: URL ModelsLab calls once per finished entry, best effort (templated).
    :param modelslab_conn_id: the connection holding the API key.
    :param wait_for_completion: wait for every video (default); with False the task returns after
        the submits, with the ids in XCom ``batch_ids`` / ``request_ids``.
    :param deferrable: wait in the triggerer; defaults to ``[operators] default_deferrable``.
    :param poll_interval: shortest pause between polling rounds, in seconds.
    :param max_poll_interval: longest pause between polling rounds, in seconds.
    :param timeout: the try's time budget for the wait (seconds or timedelta). ModelsLab itself
        fails and refunds an entry unfinished 8 minutes after submission.
    :param allow_partial_failure: with False (default) any failed entry fails the task once all
        entries finished, naming each failed input; with True failed inputs give ``None``.
    """

    template_fields: Sequence[str] = (
        "model_id",
        "prompts",
        "requests",
        "defaults",
        "track_id",
        "webhook",
        "modelslab_conn_id",
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {"requests": "json", "defaults": "json"}
    ui_color = "#e6dcff"

    def __init__(
        self,
        *,
        model_id: str,
        prompts: Any = None,
        requests: Any = None,
        defaults: Mapping[str, Any] | None = None,
        track_id: str | None = None,
        webhook: str | None = None,
        modelslab_conn_id: str = ModelsLabHook.default_conn_name,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 5.0,
        max_poll_interval: float = 60.0,
        timeout: float | timedelta = 3600.0,
        allow_partial_failure: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (prompts is None) == (requests is None):
            raise ValueError(f"{type(self).__name__}: pass exactly one of prompts or requests")
        self.model_id = model_id
        self.prompts = prompts
        self.requests = requests
        self.defaults = defaults
        self.track_id = track_id
        self.webhook = webhook
        self.modelslab_conn_id = modelslab_conn_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = _seconds(poll_interval, "poll_interval")
        self.max_poll_interval = max(_seconds(max_poll_interval, "max_poll_interval"), self.poll_interval)
        self.timeout = _seconds(timeout, "timeout")
        self.allow_partial_failure = allow_partial_failure
        self._jobs: list[dict[str, Any]] = []

    @cached_property
    def hook(self) -> ModelsLabHook:
        return ModelsLabHook(modelslab_conn_id=self.modelslab_conn_id)

    def _poll_policy(self) -> PollPolicy:
        return PollPolicy(
            min_interval=self.poll_interval,
            interval=max(PollPolicy.interval, self.poll_interval),
            max_interval=self.max_poll_interval,
        )

    # ------------------------------------------------------------------ inputs

    def _inputs(self, context: Context) -> tuple[str, list[dict[str, Any]], list[str], dict[str, Any] | None]:
        """Rendered, validated inputs: model, entries, per-entry track ids, defaults."""
        try:
            entries = core_batch.entries_from(prompts=self.prompts, requests=self.requests)
            if not entries:
                raise AirflowSkipException("No prompts or requests to generate: nothing submitted.")
            model = core_batch.check_model(self.model_id)
            defaults = self.defaults
            if defaults is not None and not isinstance(defaults, Mapping):
                raise ModelsLabConfigError(f"defaults must be a dict, got {type(defaults).__name__}")
            ti = context["ti"]
            seed = f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{getattr(ti, 'map_index', -1)}"
            track_ids = core_batch.effective_track_ids(entries, defaults, self.track_id, seed)
        except ModelsLabConfigError as exc:
            raise AirflowFailException(str(exc)) from None
        return model, entries, track_ids, dict(defaults) if defaults else None

    # ------------------------------------------------------------------ execute

    def execute(self, context: Context) -> list[list[str] | None] | None:
        model, entries, track_ids, defaults = self._inputs(context)
        canonical = json.dumps(
            {
                "model": model,
                "entries": entries,
                "defaults": defaults,
                "track_ids": track_ids,
                "webhook": self.webhook,
            },
            sort_keys=True,
            default=str,
        )
        fingerprint = hashlib.sha256(canonical.encode()).hexdigest()[:32]
        submits = self._plan_submits(model, entries, track_ids, defaults)
        stored = self._stored_jobs(context, fingerprint)
        jobs: list[dict[str, Any]] = []
        for number, (kind, endpoint, body, offset, size, ids) in enumerate(submits):
            if number in stored:
                self.log.info(
                    "Reconnecting to ModelsLab %s %s from an earlier try", kind, stored[number]["id"]
                )
                jobs.append(stored[number])
                continue
            job = self._submit_one(kind, endpoint, body, offset, size, ids, jobs)
            job["number"] = number
            jobs.append(job)
            self._remember(context, fingerprint, jobs)
        self._jobs = jobs
        self._publish_ids(context, jobs)
        if not self.wait_for_completion:
            self.log.info("Not waiting for the videos (wait_for_completion=False)")
            return None
        deadline = time.time() + self.timeout
        started_at = min(job["submitted_at"] for job in jobs)
        if self.deferrable:
            self._defer(jobs, started_at, deadline)
        finished = self._wait(jobs, started_at, deadline)
        return self._complete(context, jobs, finished, len(entries))

    def _plan_submits(
        self,
        model: str,
        entries: list[dict[str, Any]],
        track_ids: list[str],
        defaults: dict[str, Any] | None,
    ) -> list[tuple[str, str, dict[str, Any], int, int, list[str]]]:
        """Every submit this task makes, built and validated before the first one is paid for."""
        try:
            if len(entries) < core_batch.BATCH_MIN:
                out = []
                for i, (entry, tid) in enumerate(zip(entries, track_ids, strict=True)):
                    endpoint = core_batch.single_endpoint(model, entry)
                    body = {**core_batch.merged_entry(entry, defaults), "model_id": model, "track_id": tid}
                    core_batch.validate_entry(body, i, model)
                    if self.webhook:
                        body["webhook"] = self.webhook
                    out.append(("single", endpoint, body, i, 1, [tid]))
                self.log.warning(
                    "Only %d input(s): the Video Batch API takes %d to %d, so each goes to %s at the full "
                    "single-video price (a batch entry costs half).",
                    len(entries),
                    core_batch.BATCH_MIN,
                    core_batch.BATCH_MAX,
                    " / ".join(sorted({s[1] for s in out})),
                )
                return out
            plans = core_batch.plan_batches(entries, track_ids)
            return [
                (
                    "batch",
                    core_batch.BATCH_PATH,
                    core_batch.build_batch_body(
                        model, plan, defaults=defaults, track_id=self.track_id, webhook=self.webhook
                    ),
                    plan.offset,
                    plan.size,
                    list(plan.track_ids),
                )
                for plan in plans
            ]
        except ModelsLabConfigError as exc:
            raise AirflowFailException(str(exc)) from None

    def _submit_one(
        self,
        kind: str,
        endpoint: str,
        body: dict[str, Any],
        offset: int,
        size: int,
        track_ids: list[str],
        done: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """One paid submit; its failure says what was and was not submitted."""
        from modelslab_provider.client.sync import ModelsLabClient

        try:
            settings = self.hook.client.settings
        except ModelsLabError as exc:
            raise AirflowFailException(str(exc)) from None
        client = ModelsLabClient(settings, retry=PaidCallRetryPolicy(max_attempts=settings.max_retries))
        what = (
            f"batch for inputs {offset}..{offset + size - 1}"
            if kind == "batch"
            else f"request for input {offset}"
        )
        try:
            if kind == "batch":
                submitted = self._until_queue_has_room(lambda: client.submit_batch(body), what)
                job_id, eta, fetch_url, api_version = submitted.batch_id, None, None, "v6"
            else:
                result = self._until_queue_has_room(lambda: client.submit(endpoint, body), what)
                if result.status is Status.FAILED:
                    raise ModelsLabRequestError(f"ModelsLab refused the request: {result.message}")
                if result.request_id is None:
                    raise ModelsLabError("ModelsLab accepted the request but sent no request id")
                job_id, eta, fetch_url, api_version = result.request_id, result.eta, result.fetch_result, "v6"
        except ModelsLabError as exc:
            raise self._submit_failure(exc, what, track_ids, done) from exc
        finally:
            client.close()
        self.log.info("Submitted ModelsLab %s %s (%s, %d entries)", kind, job_id, what, size)
        return {
            "id": job_id,
            "kind": kind,
            "size": size,
            "offset": offset,
            "track_ids": track_ids,
            "track_id": track_ids[0] if kind == "single" else None,
            "api_version": api_version,
            "fetch_url": fetch_url,
            "eta": eta,
            "submitted_at": time.time(),
        }

    def _until_queue_has_room(self, call: Callable[[], T], what: str) -> T:
        """Repeat a submit ModelsLab refused with 429 (nothing was queued) until the budget is spent."""
        give_up = time.time() + self.timeout
        attempt = 0
        while True:
            try:
                return call()
            except ModelsLabRateLimitError as exc:
                attempt += 1
                base = (
                    exc.retry_after
                    if exc.retry_after is not None
                    else min(60.0, 5.0 * 2 ** min(attempt - 1, 4))
                )
                delay = base * (1 + 0.5 * random.random())  # noqa: S311  (spread many tasks' retries)
                if time.time() + delay > give_up:
                    raise
                self.log.warning(
                    "ModelsLab refused the %s: the account's queue is full (%s); submitting again in %.1f s",
                    what,
                    exc,
                    delay,
                )
                time.sleep(delay)

    def _submit_failure(
        self, exc: ModelsLabError, what: str, track_ids: list[str], done: list[dict[str, Any]]
    ) -> Exception:
        before = (
            f" Already submitted by this try: {', '.join(str(j['id']) for j in done)}"
            + (" (remembered: a retry reconnects to them)." if AIRFLOW_V_3_3_PLUS else ".")
            if done
            else ""
        )
        if isinstance(exc, ModelsLabAuthError):
            return AirflowFailException(
                f"{refused_key_message(exc, self.modelslab_conn_id)} The {what} was not submitted.{before}"
            )
        if isinstance(exc, ModelsLabRequestError | ModelsLabConfigError | ModelsLabNotFoundError):
            return AirflowFailException(f"ModelsLab refused the {what}: {exc}.{before}")
        if never_reached(exc):
            return AirflowException(
                f"ModelsLab could not take the {what}: {exc}. It was not submitted, so a retry is "
                f"safe.{before}"
            )
        return AirflowFailException(
            f"The {what} may or may not have been accepted by ModelsLab: {exc}. It is not sent again "
            "automatically, so nothing is paid twice. Look in your ModelsLab dashboard for track_id "
            f"{', '.join(track_ids)}; if none exists, clear this task to submit again.{before}"
        )

    # ------------------------------------------------------------------ state and XCom

    def _stored_jobs(self, context: Context, fingerprint: str) -> dict[int, dict[str, Any]]:
        """Jobs an earlier try of this task submitted for the same inputs (Airflow 3.3+)."""
        store = context.get("task_state_store") if AIRFLOW_V_3_3_PLUS else None  # type: ignore[call-overload]
        if store is None:
            return {}
        value: Any = store.get(STATE_KEY)
        if not isinstance(value, Mapping) or not isinstance(value.get("jobs"), list):
            return {}
        if value.get("fingerprint") != fingerprint:
            self.log.info("Stored ModelsLab batches were made for other inputs; submitting anew")
            return {}
        out: dict[int, dict[str, Any]] = {}
        stored: list[Any] = value["jobs"]
        for job in stored:
            if isinstance(job, Mapping) and isinstance(job.get("number"), int) and job.get("id"):
                out[job["number"]] = dict(job)
        return out

    def _remember(self, context: Context, fingerprint: str, jobs: list[dict[str, Any]]) -> None:
        """Right after each submit: the ids go to the task state store, so a retry reconnects."""
        store = context.get("task_state_store") if AIRFLOW_V_3_3_PLUS else None  # type: ignore[call-overload]
        if store is not None:
            record: Any = {"fingerprint": fingerprint, "jobs": jobs}
            store.set(STATE_KEY, record)
        self._publish_ids(context, jobs)

    def _publish_ids(self, context: Context, jobs: list[dict[str, Any]]) -> None:
        ti = context["ti"]
        batch_ids = [j["id"] for j in jobs if j["kind"] == "batch"]
        single_ids = [j["id"] for j in jobs if j["kind"] == "single"]
        if batch_ids:
            ti.xcom_push(key=XCOM_BATCH_IDS, value=batch_ids)
        if single_ids:
            ti.xcom_push(key=XCOM_REQUEST_IDS, value=single_ids)

    # ------------------------------------------------------------------ wait

    def _defer(self, jobs: list[dict[str, Any]], started_at: float, deadline: float) -> NoReturn:
        from modelslab_provider.triggers.batch import BatchFetchTrigger

        self.log.info(
            "Deferring: the triggerer waits for %d ModelsLab job(s) until %s",
            len(jobs),
            datetime.fromtimestamp(deadline, UTC).isoformat(timespec="seconds"),
        )
        self.defer(
            trigger=BatchFetchTrigger(
                jobs=jobs,
                modelslab_conn_id=self.modelslab_conn_id,
                started_at=started_at,
                deadline=deadline,
                poll_policy=self._poll_policy().to_dict(),
            ),
            method_name="execute_complete",
            timeout=None,
        )

    def _wait(
        self, jobs: list[dict[str, Any]], started_at: float, deadline: float
    ) -> dict[str, tuple[EntryResult, ...]]:
        """Poll in the worker: the same rounds as the trigger (one fetch per job per round)."""
        client = self.hook.client
        tracker = BatchWait(
            jobs={j["id"]: j["size"] for j in jobs},
            started_at=started_at,
            deadline=deadline,
            poll=self._poll_policy(),
            retry=client.retry,
        )
        by_id = {j["id"]: j for j in jobs}
        delay = tracker.first_delay(time.time())
        while True:
            if delay > 0:
                time.sleep(delay)
            errors: list[BaseException] = []
            for job_id in tracker.pending():
                job = by_id[job_id]
                try:
                    if job["kind"] == "batch":
                        entries = list(client.fetch_batch(job_id, job["size"]).entries)
                    else:
                        result = client.fetch(job_id, job["api_version"], job["fetch_url"])
                        entries = [core_batch.entry_from_single(result, job.get("track_id"))]
                except ModelsLabError as exc:
                    errors.append(exc)
                    continue
                tracker.on_status(job_id, entries)
            decision = tracker.next_round(time.time(), errors)
            if decision.action is Action.DONE:
                return tracker.finished
            if decision.action is Action.FAIL:
                error = decision.error
                if isinstance(error, ModelsLabTimeoutError):
                    raise AirflowException(self._timeout_message(str(error)))
                raise AirflowFailException(str(error))
            self.log.info(
                "ModelsLab: %d of %d job(s) finished after round %d; next poll in %.1f s",
                len(tracker.finished),
                len(jobs),
                tracker.rounds,
                decision.delay,
            )
            delay = decision.delay

    def _timeout_message(self, message: str) -> str:
        then = (
            "a retry of this task reconnects to the same batches instead of paying again."
            if AIRFLOW_V_3_3_PLUS
            else "on this Airflow version a retry submits NEW, billed batches; set retries=0 to avoid that."
        )
        return f"{message} Gave up after the task's timeout of {self.timeout:.0f} s; {then}"

    def execute_complete(self, context: Context, event: Any = None) -> list[list[str] | None]:
        """Resume after the trigger: check the event, then assemble the results in input order."""
        if not isinstance(event, Mapping) or event.get("status") not in ("success", "timeout", "error"):
            raise AirflowException(f"Unexpected ModelsLab batch trigger event {event!r}")
        message = str(event.get("message") or "")
        if event["status"] == "timeout":
            raise AirflowException(self._timeout_message(message))
        if event["status"] == "error":
            if event.get("error_type") == "unexpected":
                raise AirflowException(f"{message} (connection {self.modelslab_conn_id!r})")
            raise AirflowFailException(message)
        jobs = event.get("jobs")
        finished = event.get("finished")
        if not isinstance(jobs, list) or not isinstance(finished, Mapping):
            raise AirflowException("The ModelsLab batch trigger event lacks its jobs or results")
        parsed = {
            str(k): tuple(EntryResult.from_dict(e) for e in v if isinstance(e, Mapping))
            for k, v in finished.items()
            if isinstance(v, list)
        }
        count = sum(int(j["size"]) for j in jobs)
        return self._complete(context, jobs, parsed, count)

    def _complete(
        self,
        context: Context,
        jobs: list[dict[str, Any]],
        finished: Mapping[str, Sequence[EntryResult]],
        count: int,
    ) -> list[list[str] | None]:
        results: list[InputResult] = core_batch.assemble(jobs, finished, count)
        context["ti"].xcom_push(key=XCOM_RESULTS, value=[r.to_dict() for r in results])
        failed = [r for r in results if r.status != "success"]
        self.log.info("ModelsLab batch task: %d of %d videos ready", count - len(failed), count)
        if failed:
            summary = core_batch.failure_summary(results)
            if not self.allow_partial_failure:
                raise AirflowFailException(
                    f"{len(failed)} of {count} ModelsLab videos failed: {summary}. The other videos are in "
                    "XCom 'results'."
                )
            self.log.warning("%d of %d ModelsLab videos failed: %s", len(failed), count, summary)
        return [list(r.urls) if r.status == "success" else None for r in results]


__all__ = ["ModelsLabVideoBatchOperator"]
