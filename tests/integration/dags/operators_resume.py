"""New tries of a generating task reconnect to the request already submitted (Airflow 3.3+).

``dags test`` runs tasks in its own process, so a worker that dies cannot be killed for real:
``DiesOnce`` stands in for it by raising on its first try after the submit and the
``task_state_store`` write, as a killed worker would leave things: after the first poll (sync),
right before deferring, or once the video is done but before the task could finish. With
``job_fails_meanwhile`` the request is failed through the simulator's admin API first, so the
retry must submit anew. Jobs finish after a number of polls (``[sim:polls=N]``), not after a
time, so whether a retry finds them running does not depend on how fast this machine is.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG

from modelslab_provider.operators.video import ModelsLabTextToVideoOperator

TAG = "{{ dag_run.conf.get('tag', 'untagged') }}"
FAST = {"poll_interval": 0.2, "max_poll_interval": 1.0}


class DiesOnce(ModelsLabTextToVideoOperator):
    """A text-to-video task whose first try dies at ``dies_at`` (test stand-in for a crash)."""

    def __init__(self, *, dies_at: str, job_fails_meanwhile: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.dies_at = dies_at
        self.job_fails_meanwhile = job_fails_meanwhile

    def execute(self, context: Any) -> Any:
        self._dies = context["ti"].try_number == 1
        if self._dies and self.dies_at == "poll":
            fetch = self.hook.client.fetch

            def fetch_then_die(*args: Any, **kwargs: Any) -> Any:
                result = fetch(*args, **kwargs)
                self._die("poll")
                return result

            self.hook.client.fetch = fetch_then_die  # type: ignore[method-assign]
        return super().execute(context)

    def _die(self, where: str) -> None:
        if where != self.dies_at or not getattr(self, "_dies", False):
            return
        assert self._paid_job is not None
        assert self._paid_job.jobs
        request_id = self._paid_job.jobs[0]["id"]
        if self.job_fails_meanwhile:
            base = self.hook.client.settings.base_url
            self.hook.client.session.post(f"{base}/_sim/jobs/{request_id}/fail", timeout=5)
        raise RuntimeError(f"simulated worker death ({where}) for request {request_id}")

    def defer(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("method_name") == "execute_complete":
            self._die("defer")
        return super().defer(*args, **kwargs)

    def publish(self, context: Any, outcome: Any) -> Any:
        self._die("result")
        return super().publish(context, outcome)


with DAG(
    dag_id="operators_resume",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(seconds=0)},
    tags=["test"],
):
    DiesOnce(task_id="crash_mid_wait", dies_at="poll", prompt=f"one {TAG} [sim:polls=3 eta=0.1]", **FAST)
    DiesOnce(
        task_id="crash_before_defer",
        dies_at="defer",
        prompt=f"two {TAG} [sim:polls=2 eta=0.1]",
        deferrable=True,
        **FAST,
    )
    DiesOnce(task_id="crash_when_done", dies_at="result", prompt=f"five {TAG} [sim:instant=1]", **FAST)
    DiesOnce(
        task_id="crash_then_job_failed",
        dies_at="poll",
        prompt=f"three {TAG} [sim:polls=3 eta=0.1]",
        job_fails_meanwhile=True,
        **FAST,
    )
    for mode, deferrable in (("sync", False), ("deferred", True)):
        ModelsLabTextToVideoOperator(
            task_id=f"timeout_then_retry_{mode}",
            prompt=f"four {mode} {TAG} [sim:polls=10 eta=0.1]",
            timeout=1.5,
            retries=9,  # spare tries: a loaded machine polls less often in each 1.5 s try
            deferrable=deferrable,
            **FAST,
        )
