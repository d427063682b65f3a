"""Where a try remembers what it paid for, so the next try of the task can reconnect to it.

Airflow 3.3+: ``task_state_store`` (scoped to the task instance, kept across tries). Below 3.3
there is no such store, so the record goes to an Airflow Variable named after the task
instance, written after each paid submit and deleted when the task succeeds. A Variable survives
a worker crash, a timeout and a failure, which is what a retry or a clear needs to reuse what was
paid for; it is visible under Admin > Variables (ids and fingerprints only, never the key), and
one stays behind for a task that failed and is never run again. Nothing read back is trusted:
each stored submission is checked against the server before it is adopted.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import TYPE_CHECKING, Any

from modelslab_provider.version_compat import AIRFLOW_V_3_3_PLUS

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

log = logging.getLogger(__name__)

#: prefix of the Variables holding records below Airflow 3.3
VARIABLE_PREFIX = "modelslab_job"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: Airflow's Variable key column is 250 characters
_KEY_MAX = 250


class RecordStore:
    """No record at all (``durable=False``): every try submits anew."""

    durable = False
    where = "nowhere"

    def load(self) -> Any:
        return None

    def save(self, value: Any) -> None:
        return None

    def clear(self) -> None:
        return None


class TaskStateStore(RecordStore):
    """Airflow 3.3+'s ``task_state_store`` under the operator's key."""

    durable = True
    where = "task_state_store"

    def __init__(self, store: Any, key: str) -> None:
        self.store, self.key = store, key

    def load(self) -> Any:
        return self.store.get(self.key)

    def save(self, value: Any) -> None:
        self.store.set(self.key, value)


class VariableStore(RecordStore):
    """An Airflow Variable per task instance (below 3.3), deleted when the task succeeds."""

    durable = True
    where = "an Airflow Variable"

    def __init__(self, key: str) -> None:
        self.key = key

    def load(self) -> Any:
        from airflow.sdk import Variable

        try:
            return Variable.get(self.key, default=None, deserialize_json=True)
        except Exception:  # a record that cannot be read is no record: the checks submit anew
            log.warning("Could not read Variable %s; treating it as absent", self.key, exc_info=True)
            return None

    def save(self, value: Any) -> None:
        """Write the record; when that fails the job goes on unremembered (and says so on failure)."""
        from airflow.sdk import Variable

        try:
            Variable.set(
                self.key,
                value,
                description="ModelsLab ids paid for by this task instance (no key); removed when it succeeds",
                serialize_json=True,
            )
        except Exception:
            log.warning(
                "Could not write Variable %s: a new try of this task cannot reconnect to what this one paid "
                "for",
                self.key,
                exc_info=True,
            )
            self.durable = False

    def clear(self) -> None:
        from airflow.sdk import Variable

        try:
            Variable.delete(self.key)
        except Exception:  # best effort: a leftover record is checked before any reuse
            log.debug("Could not delete Variable %s", self.key, exc_info=True)


def variable_key(dag_id: str, task_id: str, run_id: str, map_index: int) -> str:
    """The Variable of one task instance: readable, and unique (a hash of the parts ends it)."""
    parts = [dag_id, task_id, run_id, str(map_index)]
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:12]
    readable = _UNSAFE.sub("_", ".".join(parts))
    return f"{VARIABLE_PREFIX}.{readable[: _KEY_MAX - len(VARIABLE_PREFIX) - 15]}.{digest}"


def record_store(context: Context, key: str, durable: bool) -> RecordStore:
    """The store of this Airflow line, or none with ``durable=False``."""
    if not durable:
        return RecordStore()
    if AIRFLOW_V_3_3_PLUS:
        store = context.get("task_state_store")  # type: ignore[call-overload]
        return TaskStateStore(store, key) if store is not None else RecordStore()
    ti = context.get("ti")  # type: ignore[call-overload]
    dag_id, task_id, run_id = (getattr(ti, name, None) for name in ("dag_id", "task_id", "run_id"))
    if not (isinstance(dag_id, str) and isinstance(task_id, str) and isinstance(run_id, str)):
        return RecordStore()  # no task instance to name the record after
    map_index = getattr(ti, "map_index", -1)
    return VariableStore(
        variable_key(dag_id, task_id, run_id, map_index if isinstance(map_index, int) else -1)
    )
