"""Tenants (API keys) in the balancer: priority order in the buffer, and what a tenant hears.

The server's key check puts a ``Tenant`` in context with ``serving_tenant``; every request
started inside belongs to it. Scripted agents over memory streams, as in test_balancer.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from balancer_fakes import FakeAgent

from paddler._tenancy import Tenant, current_tenant, serving_tenant
from paddler.balancer import Balancer, BalancerConfig
from paddler.hookspecs import hookimpl
from paddler.plugins import get_plugin_manager
from paddler.wire import ContinueFromRawPromptParams, Done

pytestmark = pytest.mark.anyio

PROMPT = ContinueFromRawPromptParams(raw_prompt="hi", max_tokens=8)


class Recording(Tenant):
    """A tenant that writes down what the balancer tells it."""

    def __init__(self, name: str, priority: int = 0) -> None:
        super().__init__(name, priority=priority)
        self.outcomes: list[str] = []
        self.tokens: list[tuple[int, int]] = []
        self.waits: list[float] = []

    def count_request(self, outcome: str) -> None:
        self.outcomes.append(outcome)

    def count_tokens(self, *, prompt: int, generated: int) -> None:
        self.tokens.append((prompt, generated))

    def observe_buffer_wait(self, seconds: float) -> None:
        self.waits.append(seconds)


@contextlib.asynccontextmanager
async def one_agent(slots: int) -> AsyncIterator[tuple[Balancer, FakeAgent]]:
    async with Balancer(
        BalancerConfig(buffered_request_timeout=5.0),
        plugin_manager=get_plugin_manager(entry_points=False),
    ) as balancer:
        agent = FakeAgent(balancer, "a1", slots)
        async with anyio.create_task_group() as tg:
            tg.start_soon(agent.run)
            await agent.start()
            yield balancer, agent
            tg.cancel_scope.cancel()


async def collect(balancer: Balancer, **kwargs: Any) -> list[Any]:
    async with balancer.generate(PROMPT, **kwargs) as stream:
        return [item async for item in stream]


async def test_higher_priorities_leave_the_buffer_first() -> None:
    """With no free slot, the buffer serves by priority, FIFO within one priority."""
    async with one_agent(0) as (balancer, agent):
        order: list[str] = []

        async def request(name: str, tenant: Tenant) -> None:
            with serving_tenant(tenant):
                items = await collect(balancer, client_request_id=name)
            order.append(items[-1].request_id)

        arrivals = [("low-1", 0), ("low-2", 0), ("mid", 5), ("low-3", 0), ("high", 10)]
        async with anyio.create_task_group() as tg:
            for index, (name, priority) in enumerate(arrivals):
                tg.start_soon(request, name, Tenant(f"key-{priority}", priority=priority))
                with anyio.fail_after(5):
                    await balancer.wait_buffered(index + 1)
            await agent.set_slots(1)
    assert order == ["high", "mid", "low-1", "low-2", "low-3"]


async def test_a_tenant_hears_its_wait_usage_and_outcome() -> None:
    """A finished request reports its buffer wait, its Done usage and "ok" to its tenant; a
    request refused in the tenant's context is counted for it too; others hear nothing."""
    alice, bob = Recording("alice"), Recording("bob")
    async with one_agent(1) as (balancer, _):
        with serving_tenant(alice):
            items = await collect(balancer)
            assert current_tenant() is alice
            balancer.count_rejected(429)
        assert current_tenant() is None
        await collect(balancer)  # no tenant
    done = items[-1].response
    assert isinstance(done, Done)
    assert alice.outcomes == ["ok", "429"]
    assert alice.tokens == [(done.usage.prompt_tokens, done.usage.completion_tokens)]
    assert len(alice.waits) == 1
    assert bob.outcomes == bob.waits == []
    assert balancer.statistics().requests_failed == 1  # the 429, counted globally too


async def test_the_tenant_reaches_policies_on_request_info() -> None:
    """RequestInfo.tenant and .priority are what a policy plugin sees."""
    seen: list[Any] = []
    tenant = Tenant("batch", priority=3)

    class Policy:
        @hookimpl
        def paddler_select_agent(self, request: Any, candidates: Any) -> Any:
            seen.append((request.tenant, request.priority))
            return None  # let the default policy choose

    async with one_agent(1) as (balancer, _):
        balancer.plugin_manager.register(Policy(), name="recorder")
        with serving_tenant(tenant):
            await collect(balancer)
        await collect(balancer)
    assert seen == [(tenant, 3), (None, 0)]
