"""Model pools with real agents and the demo model: two pools, each served by its own agent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from core_cluster import agents, collect, desired_state, unique_name

from paddler.balancer import Balancer, BalancerConfig
from paddler.wire import DEFAULT_POOL, Done

pytestmark = [pytest.mark.anyio, pytest.mark.model]


async def test_two_pools_keep_their_requests_and_a_new_pool_scales_from_zero(
    model_path: Path,
) -> None:
    name = unique_name()
    config = BalancerConfig(inproc_name=name, buffered_request_timeout=60)
    async with Balancer(config) as balancer:
        for pool in (DEFAULT_POOL, "b", "late"):
            await balancer.set_desired_state(desired_state(model_path), pool)
        # One llama.cpp thread each: up to three engines decode at once on 2 cores.
        async with agents(name, 1, threads=1) as _, agents(name, 1, pool="b", threads=1) as _:
            with anyio.fail_after(60):
                await balancer.wait_agents(1, pool=DEFAULT_POOL)
                await balancer.wait_agents(1, pool="b")
            for _ in range(2):
                to_b = await collect(balancer, pool="b")
                to_default = await collect(balancer)
                assert isinstance(to_b[-1].response, Done) and to_b[-1].generated_by == "b-0"
                assert to_default[-1].generated_by == "agent-0"
            assert [p.serving for p in balancer.pools_snapshot()] == [True, True, False]

            # "late" has no agent: its request waits in its own buffer until one joins.
            result: list[Any] = []
            served = anyio.Event()

            async def request() -> None:
                result.extend(await collect(balancer, pool="late"))
                served.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(request)
                with anyio.fail_after(5):
                    await balancer.wait_buffered(1, pool="late")
                assert balancer.statistics("b").requests_buffered == 0
                async with agents(name, 1, pool="late", threads=1):
                    with anyio.fail_after(60):
                        await served.wait()
            assert isinstance(result[-1].response, Done) and result[-1].generated_by == "late-0"
        statistics = {pool: balancer.statistics(pool) for pool in balancer.pool_names()}
        assert {p: s.requests_completed for p, s in statistics.items()} == {
            DEFAULT_POOL: 2,
            "b": 2,
            "late": 1,
        }
