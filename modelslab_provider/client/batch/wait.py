"""BatchWait: the state of one task's wait for all of its batch jobs, shared by the worker and the trigger.

Pure: callers pass the time and jitter in, and do the fetching and sleeping themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from modelslab_provider.client.batch.results import EntryResult
from modelslab_provider.client.core import Status
from modelslab_provider.client.errors import ModelsLabError, ModelsLabTimeoutError, ModelsLabTransientError
from modelslab_provider.client.policy import Action, DeadlineWait, Decision, PollPolicy, RetryPolicy


@dataclass
class BatchWait(DeadlineWait):
    """The state of one task's wait for all of its jobs; shared by the sync loop and the trigger.

    Each round fetches every unfinished job once (one fetch per batch, never one per video), feeds
    the answers in, then asks :meth:`next_round` what to do. Finished jobs are never fetched again.
    """

    jobs: Mapping[str, int]
    started_at: float
    deadline: float | None = None
    poll: PollPolicy = field(default_factory=PollPolicy)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    finished: dict[str, tuple[EntryResult, ...]] = field(default_factory=dict)
    rounds: int = 0
    fetches: int = 0
    transient_errors: int = 0
    latest: dict[str, tuple[EntryResult, ...]] = field(default_factory=dict)
    #: polls in a row in which an entry said ``success`` without a URL, by (job id, entry index)
    empty_successes: dict[tuple[str, int], int] = field(default_factory=dict)
    #: which limit set ``deadline`` (e.g. "execution_timeout of 20 s"), named in the timeout error
    limit: str | None = None

    def _cap_empty_success(self, job_id: str, entry: EntryResult) -> EntryResult:
        """An entry saying ``success`` with no URL fails after the policy's cap, as a single video does."""
        key = (job_id, entry.index)
        if entry.is_terminal or entry.raw_status.lower() != "success":
            self.empty_successes.pop(key, None)
            return entry
        seen = self.empty_successes[key] = self.empty_successes.get(key, 0) + 1
        if seen <= self.poll.max_empty_success_polls:
            return entry
        return replace(
            entry,
            status=Status.FAILED,
            message=f"ModelsLab reported this video as successful but sent no output URL in {seen} polls; "
            "check it in your ModelsLab dashboard.",
        )

    def pending(self) -> list[str]:
        return [job_id for job_id in self.jobs if job_id not in self.finished]

    def on_status(self, job_id: str, entries: Sequence[EntryResult]) -> None:
        self.fetches += 1
        size = self.jobs[job_id]
        entries = [self._cap_empty_success(job_id, e) for e in entries]
        self.latest[job_id] = tuple(entries)
        if len(entries) == size and all(e.is_terminal for e in entries):
            self.finished[job_id] = tuple(entries)

    def next_round(self, now: float, errors: Sequence[BaseException] = (), jitter: float = 0.0) -> Decision:
        """After a round: done, fail (a non-transient error or the deadline) or wait N seconds."""
        self.rounds += 1
        for error in errors:
            if not isinstance(error, ModelsLabTransientError):
                if isinstance(error, ModelsLabError):
                    return Decision(Action.FAIL, error=error)
                raise error
        if not self.pending():
            return Decision(Action.DONE)
        if errors:
            self.transient_errors += 1
            delay = self.poll.error_delay(self.transient_errors, errors[0], self.retry, jitter)
        else:
            self.transient_errors = 0
            delay = self.poll.next_delay(elapsed=now - self.started_at, eta=None, jitter=jitter)
        return self._wait(now, delay)

    def first_delay(self, now: float) -> float:
        """Batches have no documented ETA: the first poll comes after the policy's shortest pause."""
        return self._cut(now, self.poll.min_interval) or 0.0

    def running(self) -> int:
        """Entries of unfinished jobs that were still running at their last fetch."""
        return sum(1 for job_id in self.pending() for e in self.latest.get(job_id, ()) if not e.is_terminal)

    def timeout_error(self, now: float) -> ModelsLabTimeoutError:
        hit = f" when the task's {self.limit} ran out" if self.limit else ""
        return ModelsLabTimeoutError(
            f"ModelsLab jobs {', '.join(self.pending())} were not finished after "
            f"{now - self.started_at:.0f} s{hit} ({self.rounds} polling rounds, {self.running()} videos "
            "still running); ModelsLab fails and refunds batch entries unfinished 8 minutes after "
            "submission."
        )
