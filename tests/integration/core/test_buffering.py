"""Scale from zero and buffer timeouts with the real model (one agent each)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from core_cluster import agents, cluster, collect, desired_state, prompt, unique_name

from paddler.balancer import Balancer, BalancerConfig
from paddler.wire import Done, ErrorEnvelope

pytestmark = [pytest.mark.anyio, pytest.mark.model]


async def test_request_before_any_agent_is_served_when_one_joins(model_path: Path) -> None:
    name = unique_name()
    config = BalancerConfig(inproc_name=name, buffered_request_timeout=60)
    async with Balancer(config) as balancer:
        await balancer.set_desired_state(desired_state(model_path))
        result: list[Any] = []
        served = anyio.Event()

        async def request() -> None:
            result.extend(await collect(balancer))
            served.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(request)
            with anyio.fail_after(5):
                async for snapshot in balancer.subscribe_buffered_requests():
                    if snapshot.buffered_requests_current == 1:
                        break
            async with agents(name, 1):
                with anyio.fail_after(60):
                    await served.wait()
        assert isinstance(result[-1].response, Done)
        assert result[-1].generated_by == "agent-0"


async def test_waiting_longer_than_the_buffer_timeout_is_504(model_path: Path) -> None:
    async with cluster(model_path, agent_count=1, buffered_request_timeout=0.3) as (balancer, _):
        results: list[list[Any]] = []

        async def request(max_tokens: int) -> None:
            results.append(await collect(balancer, prompt(max_tokens=max_tokens)))

        async with balancer.generate(prompt(max_tokens=400, text="Write a long story.")) as long:
            await long.__anext__()  # the only slot is busy now
            await request(4)
        (late,) = results
        assert isinstance(late[-1], ErrorEnvelope) and late[-1].error.code == 504
        assert len(balancer.buffer) == 0
