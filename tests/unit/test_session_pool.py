"""The async client's pooled session: shared by concurrent waits, closed by the last one."""

from __future__ import annotations

import asyncio

from modelslab_provider.client import aio
from modelslab_provider.client.aio import AsyncModelsLabClient
from modelslab_provider.client.core import ClientSettings
from modelslab_provider.simulator import Simulator


async def test_concurrent_clients_share_one_session_and_the_last_closes_it() -> None:
    with Simulator(port=0) as sim:
        settings = ClientSettings(api_key="sk-pool-test-0001", base_url=sim.url)
        job = await AsyncModelsLabClient(settings).submit("text2video", {"prompt": "pool", "model_id": "x"})
        seen = []

        async def one_wait(delay: float) -> None:
            async with AsyncModelsLabClient(settings) as client:
                await asyncio.sleep(delay)
                await client.fetch(job.request_id)
                seen.append(aio.shared_session())

        await asyncio.gather(one_wait(0), one_wait(0.05), one_wait(0.1))
        loop = asyncio.get_running_loop()
        assert len({id(s) for s in seen}) == 1
        assert seen[0].closed
        assert loop not in aio._sessions


async def test_session_outlives_a_lease_while_another_holder_remains() -> None:
    with Simulator(port=0) as sim:
        settings = ClientSettings(api_key="sk-pool-test-0002", base_url=sim.url)
        async with AsyncModelsLabClient(settings) as outer:
            async with AsyncModelsLabClient(settings):
                await outer.wallet_balance()
            session = aio.shared_session()
            assert not session.closed
            await outer.wallet_balance()
        assert session.closed
