"""The fault matrix: one row per fault, one column per way of waiting for a video.

This module is the single source of truth. ``dags/faults_matrix.py`` builds one task per cell
from it, ``test_fault_matrix.py`` asserts every cell against it, and ``tests/FAULT_MATRIX.md`` is
rendered from it (``python -m tests.integration.reliability.matrix`` rewrites the file; a test
fails when the committed table is out of date).

Counting API calls: ``fetches`` is the number of ``POST .../fetch/<id>`` requests the simulator
received for the cell's own job, faulted ones and client-level retries included. Most faults
are tied to the job's fetch number (``polls=3 fault=500 fault_on=2,3``: fetch 1 answers
"processing", fetches 2 and 3 fail, the job is ready from fetch 3 on), so the count does not
depend on timing or on which layer retries: it is exact. Each cell's job is its own, and every
task has ``retries=1``: a cell passes only on its first try (a transient fault never costs a task
retry; a terminal failure raises ``AirflowFailException`` and skips the retry).

The test connection allows two HTTP attempts per call (``max_retries: 2``) and a 5 s timeout:
a fault on two fetches in a row therefore exhausts the client's own retry and reaches the
sensor, trigger or operator wait loop, so both layers are exercised.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

#: connection extra used by every matrix run
CLIENT_TIMEOUT = 5
CLIENT_RETRIES = 2
CONNECTION_EXTRA = {"timeout": CLIENT_TIMEOUT, "max_retries": CLIENT_RETRIES}

TABLE_FILE = Path(__file__).resolve().parents[2] / "FAULT_MATRIX.md"


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    kind: str  # "sensor" or "operator"
    deferred: bool


COLUMNS = (
    Column("poke", "Sensor poke", "sensor", False),
    Column("reschedule", "Sensor reschedule", "sensor", False),
    Column("deferrable", "Sensor deferrable", "sensor", True),
    Column("op_sync", "Operator sync", "operator", False),
    Column("op_deferred", "Operator deferred", "operator", True),
    Column("batch_sync", "Batch operator sync", "batch", False),
    Column("batch_deferred", "Batch operator deferred", "batch", True),
)
COLUMN_KEYS = tuple(c.key for c in COLUMNS)
COLUMN = {c.key: c for c in COLUMNS}
DEFERRED = tuple(c.key for c in COLUMNS if c.deferred)
#: the single-video operator's columns
OPERATORS = tuple(c.key for c in COLUMNS if c.kind == "operator")
BATCHES = tuple(c.key for c in COLUMNS if c.kind == "batch")
#: every column whose task submits (and pays for) its own work
PAYING = OPERATORS + BATCHES
SINGLE = tuple(c.key for c in COLUMNS if c.kind != "batch")
#: how many prompts a batch cell sends (one batch)
BATCH_INPUTS = 3

#: how a row is run: in one ``airflow dags test`` per column, against a simulator process the
#: test stops and restarts, or under a real scheduler + triggerer whose triggerer is restarted
DAGS_TEST, SIM_RESTART, TRIGGERER_RESTART = "dags_test", "sim_restart", "triggerer_restart"


@dataclass(frozen=True)
class Fault:
    key: str
    title: str
    #: the simulator scenario of the cell's job (a ``[sim:...]`` marker in the prompt)
    scenario: str
    #: ``success`` or ``failed`` (the task's final state, always on its first try)
    outcome: str
    #: fetches of the job the simulator must see: exact (int) or an inclusive (low, high) bound
    fetches: int | tuple[int, int]
    #: text the task's log must contain (any one of a tuple): how the fault was seen and handled
    message: str | tuple[str, ...]
    runner: str = DAGS_TEST
    columns: tuple[str, ...] = COLUMN_KEYS
    #: GETs of the output file by the store step (``ModelsLabStoreVideosOperator``), inclusive,
    #: and what the store step's log must contain
    files: tuple[int, int] | None = None
    store_message: str = ""
    #: per-column replacement of ``message`` (log wording differs between sensor and operator)
    message_by_column: dict[str, str | tuple[str, ...]] = field(default_factory=dict)
    note: str = ""
    #: the fault hits the paid submit: the task never learns the id of the job the simulator
    #: created, so the test finds it in the simulator's request log (and pushes no request_id)
    on_submit: bool = False
    #: a failure a retry may fix (plain ``AirflowException``); the cell's task gets ``retries=0``
    retryable: bool = False
    #: operator arguments of the row's cells (seconds for ``execution_timeout``)
    task_kwargs: dict[str, Any] = field(default_factory=dict)
    #: batch cells: one scenario per entry instead of ``scenario`` for all three
    entries: tuple[str, ...] = ()
    #: batch cells: the entries' outcomes in XCom ``results`` (checked when given)
    statuses: tuple[str, ...] = ()
    #: batch cells: ``allow_partial_failure=True`` and a mapped store step over ``return_value``
    #: (the README's pattern): ``files`` is then the number of copy tasks, all successful
    partial_store: bool = False
    #: paid submits the simulator must accept for the cell (0: refused before any call)
    submits: int = 1
    #: issue items this row proves (shown in the table)
    items: str = ""

    def message_for(self, column: str) -> tuple[str, ...]:
        msg = self.message_by_column.get(column, self.message)
        return (msg,) if isinstance(msg, str) else msg

    def fetches_ok(self, count: int) -> bool:
        if isinstance(self.fetches, int):
            return count == self.fetches
        low, high = self.fetches
        return low <= count <= high


def _transient(kind: str, extra: str = "") -> str:
    return f"polls=3 eta=1 fault={kind} fault_on=2,3{extra}"


FAULTS: tuple[Fault, ...] = (
    *(
        Fault(
            f"http{code}",
            f"HTTP {code}, HTML body",
            _transient(str(code)),
            "success",
            4,
            f"HTTP {code} with an HTML error page",
            note="fetch 1 running, 2 and 3 faulted, 4 ready" if code == 500 else "",
        )
        for code in (500, 502, 503, 520, 524)
    ),
    Fault("empty", "Empty body (HTTP 200)", _transient("empty"), "success", 4, "HTTP 200 with an empty body"),
    Fault(
        "truncated", "Truncated JSON", _transient("truncated"), "success", 4, "a body that is not valid JSON"
    ),
    Fault(
        "slow",
        f"Slower than the client timeout ({CLIENT_TIMEOUT} s)",
        # ready from fetch 4: a slow reply is computed when it is finally sent, so with ``polls=3``
        # the late (unread) answer to fetch 3 would already be the terminal one
        "polls=4 eta=1 fault=slow fault_on=2,3 slow_s=7",
        "success",
        4,
        f"did not answer within {CLIENT_TIMEOUT} s",
    ),
    Fault("drop", "Dropped connection", _transient("drop"), "success", 4, "Connection to ModelsLab failed"),
    Fault(
        "rate429",
        "HTTP 429 with `retry_after`",
        _transient("429", " retry_after=1"),
        "success",
        4,
        "rate limit (HTTP 429): Too many requests",
    ),
    Fault(
        "rate429bare",
        "HTTP 429 without `retry_after`",
        _transient("429bare"),
        "success",
        4,
        "rate limit (HTTP 429): too many requests",
    ),
    Fault(
        "ratelimit200",
        "Rate-limit message in an HTTP 200",
        _transient("ratelimit200", " retry_after=1"),
        "success",
        4,
        "try again in 1 seconds",
    ),
    Fault(
        "unknown",
        "Unknown status",
        _transient("unknown"),
        "success",
        4,
        "unknown status 'weird_state'",
        note="logged, treated as running",
    ),
    Fault(
        "submit_5xx_queued",
        "Submit queued, then the gateway answers HTTP 502 (HTML)",
        # every submit with this marker faults (the operator columns share one simulator and one
        # marker, and a per-marker count would spare the second cell); a resubmit would fault too
        "polls=2 eta=1 submit_fault=502_after submit_fault_times=1000",
        "failed",
        0,
        "may or may not have been accepted",
        columns=PAYING,
        on_submit=True,
        note="the job exists (and is billed) but its id never arrives: exactly 1 submit, no resubmit, "
        "no fetch; the message names the try's `track_id` (XCom `track_id`; a batch: every entry's)",
    ),
    Fault(
        "submit_dropped",
        "Submit accepted, then the connection drops",
        "polls=2 eta=1 submit_fault=drop_after submit_fault_times=1000",
        "failed",
        0,
        "may or may not have been accepted",
        columns=PAYING,
        on_submit=True,
        note="the job exists (and is billed); it is not submitted a second time",
    ),
    Fault(
        "error",
        "Terminal `error`",
        "polls=2 eta=1 outcome=error",
        "failed",
        2,
        "Generation failed: simulated error",
    ),
    Fault(
        "failed",
        "Terminal `failed`",
        "polls=2 eta=1 outcome=failed",
        "failed",
        2,
        "Processing failed: simulated failure",
    ),
    Fault(
        "messege",
        "Terminal `failed` with the message in `messege`",
        "polls=2 eta=1 outcome=failed messege=1",
        "failed",
        2,
        "Processing failed: simulated failure",
    ),
    Fault(
        "failed_ratelimit",
        "Terminal `failed` whose message mentions a rate limit",
        "polls=2 eta=1 outcome=failed fail_text=ratelimit",
        "failed",
        2,
        "Provider rate limit exceeded",
        note="a finished job's status wins over its message's words: no polling until the timeout",
    ),
    Fault(
        "http403",
        "HTTP 403 (feature not on the current plan)",
        "polls=3 eta=1 fault=403 fault_on=2,3,4,5,6,7,8,9,10",
        "failed",
        2,
        "not available on your current plan",
        note="final, and not reported as a bad key",
    ),
    Fault(
        "no_urls",
        "`success` without URLs, never filled",
        "polls=2 eta=1 empty_polls=-1",
        "failed",
        7,
        "no output URL",
        note="bounded: 5 empty successes allowed (PollPolicy.max_empty_success_polls)",
        items="22.5",
    ),
    Fault(
        "late_urls",
        "`success` without URLs, filled in later",
        "polls=2 eta=1 empty_polls=2",
        "success",
        4,
        "but no output URL yet",
    ),
    Fault(
        "not_found",
        "Expired request id (not found)",
        "polls=3 eta=1 fault=notfound fault_on=2,3,4,5,6,7,8,9,10",
        "failed",
        2,
        ("Request not found", "Batch not found"),
        note="no retry storm: the first not-found ends the wait",
    ),
    Fault(
        "file_404",
        "Output file 404s, then appears (store step)",
        "polls=2 eta=1 file_delay=5",
        "success",
        2,
        "output URL(s)",
        files=(2, 12),
        store_message="HTTP 404 from",
        columns=SINGLE,
        note="the wait succeeds; the store step (ModelsLabStoreVideosOperator) retries the 404 until "
        "the file exists, then copies it",
    ),
    Fault(
        "entry_failed",
        "One of three batch entries fails",
        "",
        "failed",
        2,
        "1 of 3 ModelsLab videos failed: input 1",
        columns=BATCHES,
        entries=("polls=2 eta=1", "polls=2 eta=1 outcome=failed", "polls=2 eta=1"),
        statuses=("success", "failed", "success"),
        note="fails once every entry finished, naming the input, the API's message and the refund",
    ),
    Fault(
        "entry_refund",
        "Batch entry unfinished at the batch time limit (4 s here, 8 min documented)",
        "",
        "failed",
        (2, 60),
        "refunded",
        columns=BATCHES,
        entries=("polls=2 eta=1 batch_limit=4", "outcome=never", "polls=2 eta=1"),
        statuses=("success", "failed", "success"),
        note="ModelsLab fails the entry with `refunded: true`",
    ),
    Fault(
        "partial_store",
        "One entry fails, `allow_partial_failure=True`, mapped store step (the docs' pattern)",
        "",
        "success",
        2,
        "1 of 3 ModelsLab videos failed: input 1",
        columns=BATCHES,
        entries=("polls=2 eta=1", "polls=2 eta=1 outcome=failed", "polls=2 eta=1"),
        statuses=("success", "failed", "success"),
        partial_store=True,
        items="22.7",
        note="`ModelsLabStoreVideosOperator.partial(...).expand(urls=videos.output)`: one copy task per "
        "successful input (2), all successful, nothing failed",
    ),
    Fault(
        "queue_full",
        "Queue full (HTTP 429) at the submit, twice",
        "polls=2 eta=1 submit_fault=429 submit_fault_times=2 retry_after=1",
        "success",
        2,
        "queue is full",
        columns=BATCHES,
        items="22.8",
        note="3 submit calls, 1 accepted; deferred: the queue wait is deferred too",
    ),
    Fault(
        "exec_timeout",
        "`execution_timeout` (8 s) while deferred, `timeout` 1 h",
        "outcome=never eta=1",
        "failed",
        (1, 40),
        "execution_timeout",
        columns=("op_deferred", "batch_deferred"),
        retryable=True,
        task_kwargs={"execution_timeout": 8, "timeout": 3600, "retries": 0},
        items="22.1",
        note="ends at the try's start plus `execution_timeout` (retryable: a retry reconnects)",
    ),
    Fault(
        "fetch_past_timeout",
        "A fetch slower than the task's `timeout` (3 s)",
        "polls=100 eta=1 fault=slow fault_on=1,2,3,4,5,6,7,8,9,10 slow_s=7",
        "failed",
        (0, 1),
        "timeout",
        columns=PAYING,
        retryable=True,
        task_kwargs={"timeout": 3, "retries": 0},
        items="22.4",
        note="the fetch is cut at the deadline: no client retry after it",
    ),
    Fault(
        "poll_before_deadline",
        "Ready before the try's end (3 s), next poll due after it (8 s)",
        # ready at the first fetch, whenever it comes: only the poll just before the deadline can
        # see it (the next one is due after it), however long the submit took on a loaded machine
        "polls=1 eta=30",
        "success",
        (1, 2),
        "ModelsLab",
        columns=PAYING,
        task_kwargs={"poll_interval": 8, "max_poll_interval": 8, "timeout": 3, "retries": 0},
        items="22.9",
        note="a wait that cannot finish before its deadline polls once more just before it",
    ),
    Fault(
        "sim_restart",
        "Simulator stopped and restarted mid-wait",
        "polls=2 eta=1",
        "success",
        3,
        ("Could not connect to ModelsLab", "Connection to ModelsLab failed"),
        runner=SIM_RESTART,
        note="killed after the job's 1st fetch, down for 5 s, restarted on the same port with its "
        "jobs; 1 fetch before, 2 after",
    ),
    Fault(
        "triggerer_restart",
        "Triggerer restarted mid-wait",
        "duration=3600 eta=2",
        "success",
        (2, 30),
        "Waiting for ModelsLab request",
        message_by_column={
            "batch_deferred": ("Waiting for 1 batch of 3 videos", "Waiting for 1 ModelsLab job(s)")
        },
        runner=TRIGGERER_RESTART,
        columns=DEFERRED,
        note="real scheduler + triggerer; the job is completed by the test after the new triggerer "
        "polled it; 1 submit, 1 event, 0 fetches after success",
    ),
)
#: the rows the batch columns run: one of each kind of fault (5xx with an HTML page, empty body,
#: client timeout, drop, 429, terminal failure, 403, empty success, not found, restarts), the
#: batch's own rows and issue 22's. The other variants (more 5xx codes, truncated JSON, 429
#: without ``retry_after``, ...) meet the same client code on a batch fetch as on a single one.
BATCH_ROWS = frozenset(
    {
        "http502",
        "empty",
        "slow",
        "drop",
        "rate429",
        "submit_5xx_queued",
        "submit_dropped",
        "failed",
        "http403",
        "no_urls",
        "not_found",
        "entry_failed",
        "entry_refund",
        "partial_store",
        "queue_full",
        "exec_timeout",
        "fetch_past_timeout",
        "poll_before_deadline",
        "sim_restart",
        "triggerer_restart",
    }
)
FAULTS = tuple(
    f if f.key in BATCH_ROWS else replace(f, columns=tuple(c for c in f.columns if c not in BATCHES))
    for f in FAULTS
)
FAULT = {f.key: f for f in FAULTS}


@dataclass(frozen=True)
class DagSpec:
    """One DAG of the matrix: which cells it holds and how fast its tasks poll."""

    dag_id: str
    columns: tuple[str, ...]
    faults: tuple[str, ...]
    #: poll interval of sensors and operators (and poke interval), seconds
    pace: float = 0.5
    #: run the cells strictly one after the other (else in any order, waits may interleave)
    chain: bool = False
    #: the sensors' and operators' ``timeout``, seconds
    timeout: float = 120

    def cells(self) -> list[tuple[str, str]]:
        return [(f, c) for f in self.faults for c in self.columns if c in FAULT[f].columns]


DAGS_TEST_FAULTS = tuple(f.key for f in FAULTS if f.runner == DAGS_TEST)
DAG_SPECS: tuple[DagSpec, ...] = (
    *(DagSpec(f"faults_{c}", (c,), DAGS_TEST_FAULTS) for c in COLUMN_KEYS),
    # a 2 s pace leaves the test time to stop the simulator between a job's 1st and 2nd fetch;
    # its cells run one after the other, so each one meets its own outage
    DagSpec("faults_sim_restart", COLUMN_KEYS, ("sim_restart",), pace=2.0, chain=True),
    DagSpec("faults_triggerer_restart", DEFERRED, ("triggerer_restart",), pace=1.0, timeout=900),
)
DAG_SPEC = {d.dag_id: d for d in DAG_SPECS}


def task_id(fault: str, column: str) -> str:
    return f"{column}__{fault}"


def store_task_id(fault: str, column: str) -> str:
    return f"store__{column}__{fault}"


def prompt(dag_id: str, fault: str, column: str) -> str:
    """The prompt of a cell's job: names the cell (to find its submit) and carries the scenario."""
    return f"fault matrix {dag_id}/{task_id(fault, column)} [sim:{FAULT[fault].scenario}]"


def cells() -> list[tuple[str, str, str]]:
    """Every (dag_id, fault, column) cell, in table order."""
    spec_of = {(f, c): d.dag_id for d in DAG_SPECS for f, c in d.cells()}
    return [(spec_of[(f.key, c)], f.key, c) for f in FAULTS for c in COLUMN_KEYS if c in f.columns]


def batch_prompts(dag_id: str, fault: str, column: str) -> list[str]:
    """The prompts of a batch cell: each names the cell and carries its entry's scenario."""
    spec = FAULT[fault]
    scenarios = spec.entries or (spec.scenario,) * BATCH_INPUTS
    return [
        f"fault matrix {dag_id}/{task_id(fault, column)} #{i} [sim:{sc}]" for i, sc in enumerate(scenarios)
    ]


# --------------------------------------------------------------------------- the table


def _calls(fault: Fault) -> str:
    if isinstance(fault.fetches, int):
        text = f"{fault.fetches} fetches"
    else:
        text = f"{fault.fetches[0]}-{fault.fetches[1]} fetches"
    if fault.files:
        text += f"; {fault.files[0]}-{fault.files[1]} file GETs (first 404, last 200)"
    return text


def _outcome(fault: Fault) -> str:
    messages = " / ".join(f"`{m}`" for m in fault.message_for(fault.columns[0]))
    if fault.outcome == "success":
        head = "success, 1st try"
        shown = f"log: {messages}"
    else:
        head = "**fails at once** (`AirflowFailException`, retry skipped)"
        shown = f"message: {messages}"
    if fault.store_message:
        shown += f"; store log: `{fault.store_message}`"
    if fault.retryable:
        head = "**fails** (`AirflowException`, retryable; the cell has `retries=0`)"
    if fault.entries:
        shown = "entries: " + " / ".join(f"`{e}`" for e in fault.entries) + "; " + shown
    tail = f"; {fault.note}" if fault.note else ""
    items = f" (issue {fault.items})" if fault.items else ""
    return f"{head}; {shown}{tail}{items}"


def render() -> str:
    """The markdown table, generated from ``FAULTS`` and ``COLUMNS``."""
    head = [
        "# Fault matrix",
        "",
        "Generated from `tests/integration/reliability/matrix.py` by",
        "`python -m tests.integration.reliability.matrix`; `tests/integration/test_fault_matrix.py`",
        "runs every ticked cell in a real Airflow run against the simulator and asserts the outcome",
        "and the API calls stated here (and fails if this file is not up to date); the triggerer-restart",
        "row runs under a real scheduler and triggerer (`test_fault_matrix_triggerer.py`).",
        "",
        f"Connection: `timeout: {CLIENT_TIMEOUT}`, `max_retries: {CLIENT_RETRIES}` (one client-level "
        "retry, so a fault on two fetches in a row also reaches the sensor/trigger/operator wait "
        "loop). Every task has `retries=1` and must end on its first try. API calls are the "
        "`POST .../fetch/<id>` requests the simulator saw for the cell's job (faulted ones and "
        "client retries included); every operator cell also makes exactly 1 submit, and no cell "
        "fetches after the terminal answer.",
        "",
        f"The batch columns run `ModelsLabVideoBatchOperator` with {BATCH_INPUTS} prompts (one batch), "
        "each carrying the row's scenario (or its own, where the row lists one per entry); their API "
        "calls are the `POST .../batch/fetch/<id>` requests of the cell's batch (a batch fetch counts "
        "as one poll of each entry), and no batch cell ever fetches a single video. The batch columns "
        "run one row of each kind of fault (`BATCH_ROWS`); the other variants meet the same client "
        "code on a batch fetch as on a single one. Rows marked "
        '"issue 22.N" prove item N of issue 22 (one paid-job engine).',
        "",
    ]
    titles = [c.title for c in COLUMNS]
    lines = [
        "| # | Fault | Simulator scenario | Expected outcome | API calls | " + " | ".join(titles) + " |",
        "|---|---|---|---|---|" + "---|" * len(titles),
    ]
    for number, fault in enumerate(FAULTS, 1):
        ticks = []
        for column in COLUMN_KEYS:
            if column not in fault.columns:
                ticks.append("n/a")
            else:
                override = fault.message_by_column.get(column)
                ticks.append("✓" if override is None else f"✓ (log: `{override}`)")
        lines.append(
            f"| {number} | {fault.title} | {f'`{fault.scenario}`' if fault.scenario else 'per entry'} | "
            f"{_outcome(fault)} | {_calls(fault)} | " + " | ".join(ticks) + " |"
        )
    total = len(cells())
    survived = sum(1 for _, f, _ in cells() if FAULT[f].outcome == "success")
    retryable = sum(1 for _, f, _ in cells() if FAULT[f].outcome == "failed" and FAULT[f].retryable)
    foot = [
        "",
        f"{len(FAULTS)} rows, {total} cells: {survived} end in success despite the fault, "
        f"{total - survived - retryable} fail at once with the API's message (no retry), {retryable} end "
        "at the try's deadline with a retryable error.",
        "",
    ]
    return "\n".join(head + lines + foot)


def main() -> None:
    TABLE_FILE.write_text(render())
    print(f"wrote {TABLE_FILE}")


if __name__ == "__main__":
    main()
