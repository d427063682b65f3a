"""A local stand-in for the ModelsLab video API, for demos and tests without credits.

Run it with ``python -m modelslab_provider.simulator``, or in tests with
``with Simulator(port=0) as sim: ...`` (``sim.url`` is the base URL). Per-job behaviour is chosen
with ``[sim:k=v ...]`` markers inside any string of the submit body; see ``scenario.py``.
Depends only on aiohttp and the standard library, and imports aiohttp only when a server starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .runner import Simulator
from .state import SimConfig, SimState

if TYPE_CHECKING:
    from .app import SimulatorServer


async def start_simulator(host: str = "127.0.0.1", port: int = 0, **config: Any) -> SimulatorServer:
    """Start the simulator on the running event loop; ``await server.close()`` to stop it."""
    from .app import start_simulator as _start

    return await _start(host, port, **config)


__all__ = ["SimConfig", "SimState", "Simulator", "start_simulator"]
