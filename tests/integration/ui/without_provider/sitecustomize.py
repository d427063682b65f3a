"""Put on PYTHONPATH to run an Airflow component as if airflow-provider-modelslab were not installed.

The browser test restarts the API server with it, to check what users see there without the
package (issue 17): its distribution metadata is invisible (so provider discovery skips it) and
``modelslab_provider`` cannot be imported.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Iterator
from typing import Any

DIST = "airflow-provider-modelslab"
PACKAGE = "modelslab_provider"


class _HidePackage(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == PACKAGE or name.startswith(PACKAGE + "."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def _without_us(original: Any) -> Any:
    def distributions(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for dist in original(*args, **kwargs):
            name = (dist.metadata["Name"] or "").replace("_", "-").lower()
            if name != DIST:
                yield dist

    return distributions


sys.meta_path.insert(0, _HidePackage())
for _module_name in ("importlib.metadata", "importlib_metadata"):
    try:
        _module = __import__(_module_name, fromlist=["distributions"])
    except ImportError:
        continue
    _module.distributions = _without_us(_module.distributions)
