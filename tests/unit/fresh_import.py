"""What importing a module pulls in, seen from a fresh interpreter of this venv."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable


def loaded_after_import(module: str, candidates: Iterable[str]) -> list[str]:
    """Which of ``candidates`` (module names) are in ``sys.modules`` after ``import module``."""
    code = (
        f"import json, sys; import {module}; "
        f"print(json.dumps([m for m in {sorted(candidates)!r} if m in sys.modules]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return list(json.loads(proc.stdout.strip().splitlines()[-1]))
