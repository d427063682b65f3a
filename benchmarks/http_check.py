"""The response check the HTTP-provider baseline gives ``HttpEventTrigger`` (it must be async).

The trigger imports (and re-imports) this module by path on every poll, so it stays tiny.
"""

from __future__ import annotations

from typing import Any

TERMINAL = frozenset({"success", "error", "failed", "cancelled", "expired"})


async def video_ready(response: Any) -> bool:
    """True once ModelsLab's JSON body reports a terminal status (success with URLs, or a failure)."""
    try:
        body = response.json()
    except ValueError:
        return False
    status = body.get("status") if isinstance(body, dict) else None
    if status == "success":
        return bool(body.get("output"))
    return status in TERMINAL
