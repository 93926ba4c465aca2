"""SlotLease: a request's slot is given back exactly once, on every way a stream can end.

A second release would free a slot that another request holds (the pool's count would say an
agent has room it has not), so each path is checked for exactly one release per dispatched
request, by recording the pool's releases.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from balancer_fakes import FakeAgent, status, until_dispatched

from paddler.balancer import Balancer, BalancerConfig, StreamState
from paddler.balancer._config import BalancerConfig as Config
from paddler.balancer._pool import AgentEntry
from paddler.balancer._request_metrics import RequestMetrics
from paddler.balancer._slots import LeaseState, SlotDispatcher
from paddler.plugins import get_plugin_manager
from paddler.policies import RequestInfo
from paddler.wire import ContinueFromRawPromptParams, Done, ErrorEnvelope, ResponseEnvelope

pytestmark = pytest.mark.anyio

PROMPT = ContinueFromRawPromptParams(raw_prompt="hi", max_tokens=8)


@contextlib.asynccontextmanager
async def recorded(
    slots: int = 1, **agent_kwargs: Any
) -> AsyncIterator[tuple[Balancer, FakeAgent, list[str]]]:
    """A balancer with one fake agent; the list collects every slot release (agent ids)."""
    config = BalancerConfig(buffered_request_timeout=2.0, inference_item_timeout=0.2)
    async with Balancer(config, plugin_manager=get_plugin_manager(entry_points=False)) as b:
        releases: list[str] = []
        release = b.pool.release

        def spy(agent_id: str) -> bool:
            releases.append(agent_id)
            return release(agent_id)

        b.pool.release = spy  # type: ignore[method-assign]
        agent = FakeAgent(b, "a1", slots, **agent_kwargs)
        async with anyio.create_task_group() as tg:
            tg.start_soon(agent.run)
            await agent.start()
            with anyio.fail_after(5):
                await b.wait_agents(1)
            yield b, agent, releases
            tg.cancel_scope.cancel()


async def test_a_completed_stream_releases_once() -> None:
    async with recorded() as (balancer, _, releases):
        async with balancer.generate(PROMPT) as stream:
            items = [item async for item in stream]
            assert isinstance(items[-1].response, Done)
            assert stream.state is StreamState.FINISHED
        assert releases == ["a1"]


async def test_a_cancelled_stream_releases_once_after_its_done() -> None:
    async with recorded(tokens=("a", "b", "c")) as (balancer, _, releases):
        async with balancer.generate(PROMPT) as stream:
            await stream.__anext__()
            await stream.cancel()
            assert stream.state is StreamState.STOPPING
            rest = [item async for item in stream]
        assert isinstance(rest[-1].response, Done)
        assert releases == ["a1"]


async def test_leaving_early_keeps_the_slot_until_the_drain_then_releases_once() -> None:
    async with recorded(hold=True, ignore_stop=True) as (balancer, agent, releases):
        async with balancer.generate(PROMPT) as stream:
            await until_dispatched(balancer, stream)
        with anyio.fail_after(5):
            while not agent.stops:
                await agent.changed.wait()
        # The agent has not confirmed the stop: the slot still counts as busy.
        assert agent.stops == [agent.requests[0].id]
        assert balancer.statistics().slots_busy == 1 and releases == []
        agent.release()  # it ends the request (tokens, then Done): the drain reads to the end
        with anyio.fail_after(5):
            await balancer.wait_idle()
        assert releases == ["a1"]


async def test_an_item_timeout_releases_once_after_the_drain() -> None:
    async with recorded(hold=True) as (balancer, agent, releases):
        async with balancer.generate(PROMPT) as stream:
            with anyio.fail_after(5):
                items = [item async for item in stream]
        assert isinstance(items[-1], ErrorEnvelope) and items[-1].error.code == 504
        with anyio.fail_after(5):
            await balancer.wait_idle()  # the agent answers the stop with Done
        assert agent.stops == [agent.requests[0].id]
        assert releases == ["a1"]


async def test_an_agent_that_disconnects_mid_stream_releases_once() -> None:
    async with recorded(hold=True) as (balancer, agent, releases):
        async with balancer.generate(PROMPT) as stream:
            await until_dispatched(balancer, stream)
            await agent.disconnect()
            with anyio.fail_after(5):
                items = [item async for item in stream]
        assert isinstance(items[-1], ErrorEnvelope) and items[-1].error.code == 502
        assert releases == ["a1"]


async def test_a_request_cancelled_while_buffered_never_holds_a_slot() -> None:
    async with recorded(hold=True) as (balancer, agent, releases):
        async with balancer.generate(PROMPT) as holding, anyio.create_task_group() as tg:
            await until_dispatched(balancer, holding)
            async with balancer.generate(PROMPT) as waiting:
                items: list[Any] = []

                async def read() -> None:
                    items.extend([item async for item in waiting])

                tg.start_soon(read)
                with anyio.fail_after(5):
                    await balancer.wait_buffered(1)
                await waiting.cancel()
                with anyio.fail_after(5):
                    await balancer.wait_statistics(lambda s: s.requests_buffered == 0)
            assert waiting.state is StreamState.FINISHED and releases == []
            tg.cancel_scope.cancel()
        agent.release()
        with anyio.fail_after(5):
            await balancer.wait_idle()
        assert releases == ["a1"]


async def test_lease_releases_once_and_release_after_waits_for_the_cleanup() -> None:
    """The lease by itself: a second release does nothing; release_after holds the slot
    until the cleanup returns."""
    async with anyio.create_task_group() as tg:
        slots = SlotDispatcher(
            Config(),
            get_plugin_manager(entry_points=False),
            RequestMetrics(),
            generation_enabled=lambda: True,
        )
        slots.start(tg)
        slots.pool.add(AgentEntry(id="a", name=None, status=status(1)))
        first = slots.lease(RequestInfo(request_id="r1", kind="generate"))
        await first.acquire()
        assert first.state is LeaseState.GRANTED and slots.pool.slots_busy == 1
        assert first.release() and not first.release()
        assert first.state is LeaseState.RELEASED and slots.pool.slots_busy == 0

        second = slots.lease(RequestInfo(request_id="r2", kind="generate"))
        await second.acquire()
        done = anyio.Event()
        second.release_after(done.wait)
        await anyio.lowlevel.checkpoint()
        assert slots.pool.slots_busy == 1, "held while the cleanup runs"
        done.set()
        with anyio.fail_after(5):
            while slots.pool.slots_busy:
                await slots.agents_changed.wait_beyond(slots.agents_changed.version)
        assert second.state is LeaseState.RELEASED


async def test_stream_items_come_from_the_agent_connection() -> None:
    """Routes belong to the agent's connection: a finished request leaves none behind."""
    async with recorded() as (balancer, _, _releases):
        async with balancer.generate(PROMPT) as stream:
            items = [item async for item in stream]
        assert all(isinstance(item, ResponseEnvelope) for item in items)
        entry = balancer.pool.get("a1")
        assert entry is not None and entry.connection is not None
        assert len(entry.connection) == 0
