"""Airflow version flags for the few places where the provider behaves differently per Airflow line.

Our own copy, as Airflow asks of providers (no import of another provider's flags). Only the
base version counts, so release candidates and dev builds of 3.3 already count as 3.3.
"""

from __future__ import annotations

import re


def airflow_version() -> tuple[int, int]:
    """(major, minor) of the running Airflow, read once at import."""
    from airflow import __version__

    match = re.match(r"(\d+)\.(\d+)", __version__)
    if match is None:  # pragma: no cover - Airflow always has a dotted version
        raise RuntimeError(f"cannot read the Airflow version from {__version__!r}")
    return int(match.group(1)), int(match.group(2))


_VERSION = airflow_version()

#: 3.1 added ``BaseHook.aget_connection`` (the provider's floor)
AIRFLOW_V_3_1_PLUS: bool = _VERSION >= (3, 1)
#: 3.2 moved trigger kwargs to ``airflow.sdk.serde`` and the connection form to ``conn-fields``
AIRFLOW_V_3_2_PLUS: bool = _VERSION >= (3, 2)
#: 3.3 added ``ResumableJobMixin`` and the per-task-instance ``task_state_store``
AIRFLOW_V_3_3_PLUS: bool = _VERSION >= (3, 3)

__all__ = ["AIRFLOW_V_3_1_PLUS", "AIRFLOW_V_3_2_PLUS", "AIRFLOW_V_3_3_PLUS", "airflow_version"]
