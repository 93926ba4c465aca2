"""Swapping the model under load: nothing is lost, later requests use the new state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from core_cluster import cluster, collect, desired_state, prompt, wait_applied

from paddler.wire import Done, ResponseEnvelope

pytestmark = [pytest.mark.anyio, pytest.mark.model]


async def test_swap_under_load_loses_no_request(model_path: Path) -> None:
    async with cluster(model_path, agent_count=2, buffered_request_timeout=60) as (
        balancer,
        started,
    ):
        results: list[list[Any]] = []

        async def request() -> None:
            results.append(await collect(balancer, prompt(max_tokens=24)))

        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(request)
            with anyio.fail_after(10):
                await balancer.wait_slots_busy(2)
            await balancer.set_desired_state(desired_state(model_path, context_size=2048))
            for _ in range(4):
                tg.start_soon(request)
            for agent in started:
                await wait_applied(agent, balancer)
        for result in results:
            assert isinstance(result[-1], ResponseEnvelope), result[-1]
            assert isinstance(result[-1].response, Done)
        assert len(results) == 8
        for agent in started:
            assert agent.engine.parameters.context_size == 2048
            assert agent.engine.threads == 1  # the agent's thread count survives the swap
        after = await collect(balancer)
        assert isinstance(after[-1].response, Done)
