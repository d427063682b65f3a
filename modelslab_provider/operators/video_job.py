"""One paid ModelsLab video request as a job: the request body in, the output URLs and details out.

The job's life (submit, record, reconnect, wait, failures) is the engine's
(:class:`~modelslab_provider.jobs.engine.PaidJob`); docs/retries.md ("Retries, timeouts and who
pays") states what a retry, a timeout or an ambiguous submit does on each Airflow line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException

from modelslab_provider.client.batch import PlannedSubmit
from modelslab_provider.client.core import SECRET_FIELDS, resolve_endpoint
from modelslab_provider.client.errors import ModelsLabError
from modelslab_provider.client.submit import make_track_id, prepare_payload
from modelslab_provider.events import (  # noqa: F401  (output keys re-exported: older imports keep working)
    XCOM_GENERATION_TIME,
    XCOM_META,
    XCOM_PROXY_LINKS,
    XCOM_VIDEO_URL,
    failure,
    video_outputs,
)
from modelslab_provider.jobs.keys import (  # noqa: F401  (re-exported: older imports keep working)
    XCOM_API_VERSION,
    XCOM_ETA,
    XCOM_FETCH_URL,
    XCOM_REQUEST_ID,
    XCOM_TRACK_ID,
)
from modelslab_provider.operators.base import ModelsLabBaseOperator

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from modelslab_provider.jobs.engine import JobSpec, Outcome


#: ``task_state_store`` key of the submitted request; renaming it breaks in-flight retries
STATE_KEY = "modelslab_request"


class VideoJobOperator(ModelsLabBaseOperator):
    """Submit one paid video request to ``endpoint``, push its id, wait, and push the output URLs.

    Subclasses say what to send (:meth:`build_payload`); see
    :class:`~modelslab_provider.operators.video.ModelsLabVideoOperator` for the arguments.
    """

    state_key = STATE_KEY

    def __init__(self, *, endpoint: str, resubmit_on_ambiguous_failure: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.endpoint = endpoint
        self.resubmit_on_ambiguous_failure = resubmit_on_ambiguous_failure

    def build_payload(self) -> dict[str, Any]:
        """The request body without the key."""
        raise NotImplementedError

    def job_spec(self, context: Context) -> JobSpec:
        """A job of one submission: the checked body, and a ``track_id`` naming this try."""
        from modelslab_provider.jobs.engine import JobSpec

        try:
            resolve_endpoint(self.endpoint)
        except ModelsLabError as exc:
            raise AirflowFailException(str(exc)) from None
        body = self.build_payload()
        secret = sorted(str(k) for k in body if str(k).strip().lower() in SECRET_FIELDS)
        if secret:
            raise AirflowFailException(
                f"payload must not contain {secret}: the API key comes from Airflow connection "
                f"{self.modelslab_conn_id!r} only."
            )
        try:
            body = prepare_payload(self.endpoint, body)
        except ModelsLabError as exc:
            raise failure(exc, self.modelslab_conn_id) from None
        submission = PlannedSubmit(
            0,
            "single",
            self.endpoint,
            body,
            0,
            1,
            (self._track_id(context, body),),
            f"request to {self.endpoint}",
        )
        return JobSpec((submission,), self.state_key, video=True)

    def _track_id(self, context: Context, body: dict[str, Any]) -> str:
        given = body.get("track_id")
        if isinstance(given, str | int) and not isinstance(given, bool) and str(given).strip():
            return str(given)
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        return make_track_id(
            str(getattr(ti, "dag_id", None) or getattr(self, "dag_id", "dag")),
            str(getattr(ti, "run_id", None) or context.get("run_id") or "run"),
            str(getattr(ti, "task_id", None) or self.task_id),
            map_index if isinstance(map_index, int) else -1,
            int(getattr(ti, "try_number", None) or 1),
        )

    def submitted(self, outcome: Outcome) -> Any:
        """With ``wait_for_completion=False``: the request id, for ``VideoFetchSensor(request_id=...)``."""
        self.log.info("Not waiting for ModelsLab request %s (wait_for_completion=False)", outcome.ids[0])
        return outcome.ids[0]

    def publish(self, context: Context, outcome: Outcome) -> list[str]:
        """Push the detail keys and return the URLs (Airflow pushes them as ``return_value``)."""
        urls = list(outcome.results[0].urls)
        details = outcome.details or {}
        # the same XComs a trigger pushes when it ends the task itself (triggers/task_end.py)
        xcoms, urls = video_outputs(urls, details)
        for key, value in xcoms.items():
            context["ti"].xcom_push(key=key, value=value)
        self.log.info("ModelsLab video ready: %d output URL(s), first %s", len(urls), urls[0])
        from modelslab_provider.lineage import report_video_job

        report_video_job(
            self.hook,
            endpoint=self.endpoint,
            request_id=details.get("request_id") or outcome.ids[0],
            urls=urls,
        )
        return urls
