"""A balancer with four one-slot agents on the real model, shared by this module."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from core_cluster import cluster, collect, prompt

from paddler.balancer import Balancer
from paddler.wire import ContentToken, Done, ErrorEnvelope, ResponseEnvelope

pytestmark = [pytest.mark.anyio, pytest.mark.model]


@pytest.fixture(scope="module")
async def four(model_path: Path) -> AsyncIterator[Balancer]:
    async with cluster(
        model_path, agent_count=4, max_buffered_requests=2, buffered_request_timeout=30
    ) as (balancer, _):
        yield balancer


async def test_generate_end_to_end(four: Balancer) -> None:
    items = await collect(four)
    assert all(isinstance(i, ResponseEnvelope) for i in items)
    assert any(isinstance(i.response, ContentToken) for i in items)
    done = items[-1].response
    assert isinstance(done, Done) and done.usage.content_tokens == len(items) - 1
    assert items[-1].generated_by in {f"agent-{i}" for i in range(4)}


async def test_burst_lands_on_four_distinct_agents(four: Balancer) -> None:
    results: list[list[Any]] = []

    async def one() -> None:
        results.append(await collect(four, prompt(max_tokens=6)))

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(one)
    assert {r[-1].generated_by for r in results} == {f"agent-{i}" for i in range(4)}
    assert all(isinstance(r[-1].response, Done) for r in results)


async def test_overflow_beyond_slots_and_buffer_is_503(four: Balancer) -> None:
    results: list[list[Any]] = []

    async def one() -> None:
        results.append(await collect(four, prompt(max_tokens=16)))

    async with anyio.create_task_group() as tg:
        for _ in range(7):  # 4 slots + 2 buffered + 1 overflow
            tg.start_soon(one)
    errors = [r[-1] for r in results if isinstance(r[-1], ErrorEnvelope)]
    assert [e.error.code for e in errors] == [503]
    served = [r[-1] for r in results if isinstance(r[-1], ResponseEnvelope)]
    assert len(served) == 6 and all(isinstance(s.response, Done) for s in served)


async def test_leaving_early_frees_the_slot_after_the_agent_confirms(four: Balancer) -> None:
    async with four.generate(prompt(max_tokens=400, text="Write a long story.")) as stream:
        first = await stream.__anext__()
        assert isinstance(first, ResponseEnvelope)
        assert four.statistics().slots_busy == 1
    with anyio.fail_after(10):
        async for snapshot in four.subscribe_agents():
            if sum(agent.slots_processing for agent in snapshot.agents) == 0:
                break
    items = await collect(four)  # and the slot serves again
    assert isinstance(items[-1].response, Done)


async def test_cancel_ends_with_done_usage_so_far(four: Balancer) -> None:
    async with four.generate(prompt(max_tokens=400, text="Write a long story.")) as stream:
        items = [await stream.__anext__(), await stream.__anext__()]
        await stream.cancel()
        items.extend([item async for item in stream])
    done = items[-1].response
    assert isinstance(done, Done)
    assert 2 <= done.usage.content_tokens < 400
