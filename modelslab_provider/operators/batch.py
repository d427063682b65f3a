"""ModelsLabVideoBatchOperator: many videos on one model through ModelsLab's Video Batch API.

Each batch entry costs half of the matching single endpoint
(https://docs.modelslab.com/video-api/video-batch). The README's "Many videos at half price"
section says how inputs are chunked and what is pushed to XCom. The requests are built in
:mod:`modelslab_provider.client.batch`; paying, recording, reconnecting and waiting are the
engine's (:mod:`modelslab_provider.jobs`), the same as for a single video. This module turns
the arguments into the job's submissions and its entries into XCom.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException

from modelslab_provider.client import batch as core_batch
from modelslab_provider.client.errors import ModelsLabConfigError
from modelslab_provider.events import batch_outputs
from modelslab_provider.jobs.keys import (  # noqa: F401  (re-exported: older imports keep working)
    XCOM_BATCH_IDS,
    XCOM_REQUEST_IDS,
    XCOM_RESULTS,
)
from modelslab_provider.operators.base import ModelsLabBaseOperator
from modelslab_provider.operators.video import ModelsLabVideoLink

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from modelslab_provider.jobs.engine import JobSpec, Outcome


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
        the submits: ``return_value`` is the list of batch (and request) ids, also in XCom
        ``batch_ids`` / ``request_ids``.
    :param deferrable: wait in the triggerer; defaults to ``[operators] default_deferrable``.
    :param poll_interval: shortest pause between polling rounds, in seconds.
    :param max_poll_interval: longest pause between polling rounds, in seconds.
    :param timeout: the try's time budget (seconds or timedelta), counted from its start: the
        queue-full waits of all submits and the wait for the videos end within it (and within
        ``execution_timeout``). ModelsLab itself fails and refunds an entry unfinished 8 minutes
        after submission.
    :param allow_partial_failure: with False (default) any failed entry fails the task once all
        entries finished, naming each failed input. With True the task succeeds and
        ``return_value`` holds the URL lists of the successful inputs only (in input order), so
        ``.expand(urls=op.output)`` maps one task per video; XCom ``results`` keeps every input,
        failed ones included, by position.
    :param durable: remember the submitted batches (``task_state_store`` on Airflow 3.3+, an
        Airflow Variable below) so a new try checks them and reconnects instead of paying again.
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
    operator_extra_links = (ModelsLabVideoLink(),)
    ui_color = "#e6dcff"
    state_key = STATE_KEY

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

    # ------------------------------------------------------------------ the job

    def job_spec(self, context: Context) -> JobSpec:
        """Every submission of the task, built and validated before the first one is paid for."""
        from modelslab_provider.jobs.engine import JobSpec

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
            track_ids = core_batch.effective_track_ids(
                entries, defaults, self.track_id, seed, prefix=f"{ti.dag_id}.{ti.task_id}"
            )
            submits = core_batch.plan_submits(
                model,
                entries,
                track_ids,
                dict(defaults) if defaults else None,
                track_id=self.track_id,
                webhook=self.webhook,
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
        spec = JobSpec(tuple(submits), self.state_key, accept_failures=self.allow_partial_failure)
        self.log.info("ModelsLab job of this task: %s on model %s", spec.size_text, model)
        return spec

    def publish(self, context: Context, outcome: Outcome) -> list[list[str]]:
        """XCom ``results`` keeps every input; ``return_value`` one URL list per input (see the class)."""
        results = outcome.results
        # the same XComs a trigger pushes when it ends the task itself (triggers/task_end.py)
        xcoms, value = batch_outputs(results, self.allow_partial_failure)
        for key, item in xcoms.items():
            if key != XCOM_RESULTS:  # in XCom already: the engine pushes it before any failure
                context["ti"].xcom_push(key=key, value=item)
        from modelslab_provider.lineage import report_video_job

        for job in outcome.jobs:
            urls = [u for r in results if r.job_id == str(job["id"]) for u in r.urls]
            endpoint = core_batch.BATCH_PATH if job["kind"] == "batch" else str(job.get("endpoint") or "")
            report_video_job(self.hook, endpoint=endpoint, request_id=job["id"], urls=urls)
        return value


__all__ = ["ModelsLabVideoBatchOperator"]
