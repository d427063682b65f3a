"""ModelsLabVideoBatchOperator: many videos on one model through ModelsLab's Video Batch API.

Each batch entry costs half of the matching single endpoint
(https://docs.modelslab.com/video-api/video-batch). The README's "Many videos at half price"
section says how inputs are chunked, what is pushed to XCom, and how a batch is paid for once:
a submit is repeated only when it provably never reached ModelsLab, and a retry of the task
reconnects to the batches an earlier try submitted (Airflow 3.3+). The requests and results are
built in :mod:`modelslab_provider.client.batch`; this module is the Airflow side.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, AirflowSkipException

from modelslab_provider.client import batch as core_batch
from modelslab_provider.client.batch import BatchWait, EntryResult, InputResult, PlannedSubmit
from modelslab_provider.client.errors import (
    ModelsLabConfigError,
    ModelsLabError,
    ModelsLabRateLimitError,
    ModelsLabTimeoutError,
)
from modelslab_provider.operators.base import ModelsLabBaseOperator
from modelslab_provider.version_compat import AIRFLOW_V_3_3_PLUS

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

XCOM_BATCH_IDS = "batch_ids"
XCOM_REQUEST_IDS = "request_ids"
XCOM_RESULTS = "results"

#: ``task_state_store`` key of the submitted jobs; renaming it breaks in-flight retries
STATE_KEY = "modelslab_batches"


class ModelsLabVideoBatchOperator(ModelsLabBaseOperator):
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
    :param timeout: the try's time budget (seconds or timedelta) for the queue-full waits of all
        submits, and again for the wait for the videos. ModelsLab itself fails and refunds an entry
        unfinished 8 minutes after submission.
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
        self.allow_partial_failure = allow_partial_failure
        self._jobs: list[dict[str, Any]] = []

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
        try:
            submits = core_batch.plan_submits(
                model, entries, track_ids, defaults, track_id=self.track_id, webhook=self.webhook
            )
        except ModelsLabConfigError as exc:
            raise AirflowFailException(str(exc)) from None
        if submits[0].kind == "single":
            self.log.warning(
                "Only %d input(s): the Video Batch API takes %d to %d, so each goes to %s at the full "
                "single-video price (a batch entry costs half).",
                len(entries),
                core_batch.BATCH_MIN,
                core_batch.BATCH_MAX,
                " / ".join(sorted({s.endpoint for s in submits})),
            )
        fingerprint = core_batch.inputs_fingerprint(model, entries, track_ids, defaults, self.webhook)
        stored = self._stored_jobs(context, fingerprint)
        # queue-full waits of all submits share the try's budget
        queue_deadline = time.time() + self.timeout
        jobs: list[dict[str, Any]] = []
        for planned in submits:
            if planned.number in stored:
                self.log.info(
                    "Reconnecting to ModelsLab %s %s from an earlier try",
                    planned.kind,
                    stored[planned.number]["id"],
                )
                jobs.append(stored[planned.number])
                continue
            jobs.append(self._submit_one(planned, jobs, queue_deadline))
            self._remember(context, fingerprint, jobs)
        self._jobs = jobs
        self._publish_ids(context, jobs)
        if not self.wait_for_completion:
            self.log.info("Not waiting for the videos (wait_for_completion=False)")
            return None
        deadline = time.time() + self.timeout
        started_at = min(job["submitted_at"] for job in jobs)
        if self.deferrable:
            self._defer(jobs, started_at, deadline, context)
        finished = self._wait(jobs, started_at, deadline)
        return self._complete(context, jobs, finished, len(entries))

    def _submit_one(
        self, planned: PlannedSubmit, done: list[dict[str, Any]], deadline: float
    ) -> dict[str, Any]:
        """One paid submit through the hook; its failure says what was and was not submitted."""

        def on_queue_full(exc: ModelsLabRateLimitError, delay: float, attempts: int) -> None:
            self.log.warning(
                "ModelsLab refused the %s: the account's queue is full (%s); submitting again in %.1f s",
                planned.what,
                exc,
                delay,
            )

        try:
            if planned.kind == "batch":
                submitted = self.hook.submit_batch(
                    planned.body, what=planned.what, deadline=deadline, on_queue_full=on_queue_full
                )
                job = planned.job(submitted.batch_id, submitted_at=time.time())
            else:
                request, _ = self.hook.submit_request(
                    planned.endpoint, planned.body, deadline=deadline, on_queue_full=on_queue_full
                )
                job = planned.job(
                    request.request_id,
                    submitted_at=request.submitted_at,
                    eta=request.eta,
                    fetch_url=request.fetch_url,
                )
        except ModelsLabError as exc:
            before = (
                f" Already submitted by this try: {', '.join(str(j['id']) for j in done)}"
                + (" (remembered: a retry reconnects to them)." if AIRFLOW_V_3_3_PLUS else ".")
                if done
                else ""
            )
            raise self._paid_submit_failure(exc, planned.what, ", ".join(planned.track_ids), before) from exc
        self.log.info(
            "Submitted ModelsLab %s %s (%s, %d entries)", planned.kind, job["id"], planned.what, planned.size
        )
        return job

    # ------------------------------------------------------------------ state and XCom

    def _stored_jobs(self, context: Context, fingerprint: str) -> dict[int, dict[str, Any]]:
        """Jobs an earlier try of this task submitted for the same inputs (Airflow 3.3+)."""
        store = context.get("task_state_store") if AIRFLOW_V_3_3_PLUS else None  # type: ignore[call-overload]
        if store is None:
            return {}
        jobs = core_batch.jobs_from_record(store.get(STATE_KEY), fingerprint)
        if jobs is None:
            self.log.info("Stored ModelsLab batches were made for other inputs; submitting anew")
            return {}
        return jobs

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

    def _defer(
        self, jobs: list[dict[str, Any]], started_at: float, deadline: float, context: Context | None = None
    ) -> NoReturn:
        from modelslab_provider.triggers.batch import BatchFetchTrigger
        from modelslab_provider.triggers.task_end import MESSAGE, end_spec

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
                end_task=end_spec(
                    self,
                    context,
                    "batch",
                    timeout_message=self._timeout_message(MESSAGE),
                    allow_partial_failure=self.allow_partial_failure,
                ),
            ),
            method_name="execute_complete",
            timeout=None,
        )

    def _wait(
        self, jobs: list[dict[str, Any]], started_at: float, deadline: float
    ) -> dict[str, tuple[EntryResult, ...]]:
        """Poll in the worker: the same rounds as the trigger (one fetch per job per round)."""
        try:
            return self.hook.wait_batches(
                jobs,
                started_at=started_at,
                deadline=deadline,
                poll=self._poll_policy(),
                on_round=self._log_round,
            )
        except ModelsLabTimeoutError as exc:
            raise AirflowException(self._timeout_message(str(exc))) from exc
        except ModelsLabError as exc:
            raise AirflowFailException(str(exc)) from exc

    def _log_round(self, tracker: BatchWait, delay: float) -> None:
        self.log.info(
            "ModelsLab: %d of %d job(s) finished after round %d; next poll in %.1f s",
            len(tracker.finished),
            len(tracker.jobs),
            tracker.rounds,
            delay,
        )

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
        from modelslab_provider.triggers.task_end import batch_event

        parsed = batch_event(event)  # the same reading the triggerer does when it ends the task
        if parsed is None:
            raise AirflowException("The ModelsLab batch trigger event lacks its jobs or results")
        return self._complete(context, *parsed)

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
