"""Test plugin: switch on Airflow's hook lineage collector and record what each task reported.

Registering a hook lineage reader is what makes ``get_hook_lineage_collector()`` hand out a real
collector instead of the no-op one (the OpenLineage provider does the same). A task listener then
appends, after each successful task, the collected inputs and outputs as one JSON line to the file
named by ``$LINEAGE_CAPTURE_FILE``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin
from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector

try:
    from airflow.sdk.lineage import HookLineageReader
except ImportError:  # Airflow < 3.2
    from airflow.lineage.hook import HookLineageReader  # type: ignore[no-redef]


def _assets(infos: Any) -> list[dict[str, Any]]:
    return [
        {"uri": i.asset.uri, "extra": dict(i.asset.extra or {}), "context": type(i.context).__name__}
        for i in infos
    ]


@hookimpl
def on_task_instance_success(previous_state: Any, task_instance: Any) -> None:
    collected = get_hook_lineage_collector().collected_assets
    record = {
        "task_id": task_instance.task_id,
        "inputs": _assets(collected.inputs),
        "outputs": _assets(collected.outputs),
    }
    with open(os.environ["LINEAGE_CAPTURE_FILE"], "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")


class LineageCapturePlugin(AirflowPlugin):
    name = "lineage_capture"
    hook_lineage_readers = [HookLineageReader]
    listeners = [sys.modules[__name__]]
