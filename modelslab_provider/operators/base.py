"""What every ModelsLab operator that pays for videos shares: its arguments and the engine's entry points.

A subclass turns its arguments into a :class:`~modelslab_provider.jobs.engine.JobSpec`
(:meth:`job_spec`) and the job's outcome into XCom (:meth:`publish`). Submitting, recording,
reconnecting, waiting and the mapping of outcomes to exceptions all live in
:mod:`modelslab_provider.jobs`, once for every operator.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import BaseOperator, conf

from modelslab_provider.client.policy import PollPolicy
from modelslab_provider.hooks.modelslab import ModelsLabHook

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from modelslab_provider.jobs.engine import JobSpec, Outcome, PaidJob


def seconds(value: float | timedelta, name: str) -> float:
    """A positive duration argument in seconds; a clear error names the argument otherwise."""
    number = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(number, bool) or not isinstance(number, int | float) or not number > 0:
        raise ValueError(f"{name} must be a positive number of seconds or a timedelta, got {value!r}")
    return float(number)


class ModelsLabBaseOperator(BaseOperator):
    """The arguments of every ModelsLab operator that submits paid work and waits for it.

    :param modelslab_conn_id: the connection holding the API key.
    :param wait_for_completion: wait for the videos (default); with False the task returns right
        after the submit: its ``return_value`` is the request id (batch operator: the list of ids).
    :param deferrable: wait in the triggerer instead of the worker (queue-full waits too);
        defaults to ``[operators] default_deferrable``.
    :param poll_interval: the shortest pause between polls, in seconds.
    :param max_poll_interval: the longest pause between polls, in seconds.
    :param timeout: the task's time budget per try (seconds or timedelta), counted from the try's
        start; with ``execution_timeout``, the earlier of the two ends every wait of the try.
    :param durable: remember what a try paid for, so a new try checks it and reconnects instead
        of paying again (``task_state_store`` on Airflow 3.3+, an Airflow Variable below).
    :param end_from_trigger: when a deferred wait is over, end the task in the triggerer (no
        worker start) where Airflow can (3.3+, docs/waiting-modes.md); False: resume on a worker.
    """

    #: where the record of the job is kept; renaming it breaks in-flight retries
    state_key: ClassVar[str] = "modelslab_job"

    def __init__(
        self,
        *,
        modelslab_conn_id: str = ModelsLabHook.default_conn_name,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 5.0,
        max_poll_interval: float = 60.0,
        timeout: float | timedelta = 3600.0,
        durable: bool = True,
        end_from_trigger: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # not ``self.end_from_trigger``: Airflow refuses, when the DAG is parsed, a task whose
        # ``end_from_trigger`` is true if listeners are installed (dagbag.bag_dag); we decide when
        # the task defers instead, and resume on a worker for listeners (triggers/task_end.py)
        self.end_in_triggerer = end_from_trigger
        self.modelslab_conn_id = modelslab_conn_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = seconds(poll_interval, "poll_interval")
        self.max_poll_interval = max(seconds(max_poll_interval, "max_poll_interval"), self.poll_interval)
        self.timeout = seconds(timeout, "timeout")
        self.durable = durable
        self._paid_job: PaidJob | None = None

    @cached_property
    def hook(self) -> ModelsLabHook:
        return ModelsLabHook(modelslab_conn_id=self.modelslab_conn_id)

    def _poll_policy(self) -> PollPolicy:
        """``poll_interval`` is the floor; the ETA-aware policy decides everything above it."""
        return PollPolicy(
            min_interval=self.poll_interval,
            interval=max(PollPolicy.interval, self.poll_interval),
            max_interval=self.max_poll_interval,
        )

    # ------------------------------------------------------------------ what a subclass says

    def job_spec(self, context: Context) -> JobSpec:
        """The job's submissions, built and validated from the rendered arguments."""
        raise NotImplementedError

    def publish(self, context: Context, outcome: Outcome) -> Any:
        """Push the finished job's entries to XCom; return the task's ``return_value``."""
        raise NotImplementedError

    def submitted(self, outcome: Outcome) -> Any:
        """``return_value`` with ``wait_for_completion=False``: what a downstream sensor waits for."""
        return outcome.ids

    # ------------------------------------------------------------------ entry points

    def execute(self, context: Context) -> Any:
        return self._outcome(context, self._job(context).run())

    def execute_resubmit(
        self,
        context: Context,
        event: Any = None,
        *,
        deadline: float | None = None,
        limit: str | None = None,
        rate_limit_attempts: int = 0,
        jobs: list[dict[str, Any]] | None = None,
    ) -> Any:
        """Resume after a deferred queue-full wait: submit again, within the same try's deadline."""
        job = self._job(context)
        self.log.info("Submitting again after waiting for a queue slot")
        outcome = job.run(
            deadline=deadline, limit=limit, jobs=jobs, queue_attempts=rate_limit_attempts, resumed=True
        )
        return self._outcome(context, outcome)

    def execute_complete(self, context: Context, event: Any = None) -> Any:
        """Resume after the trigger: check the event and push the outputs."""
        return self._outcome(context, self._job(context).complete(event))

    def on_kill(self) -> None:
        message = self._paid_job.running_message() if self._paid_job is not None else None
        if message:
            self.log.warning("%s", message)

    def _job(self, context: Context) -> PaidJob:
        from modelslab_provider.jobs.engine import PaidJob

        self._paid_job = PaidJob(self, context, self.job_spec(context))
        return self._paid_job

    def _outcome(self, context: Context, outcome: Outcome) -> Any:
        if not outcome.results:
            return self.submitted(outcome)
        return self.publish(context, outcome)
