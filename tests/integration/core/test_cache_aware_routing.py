"""cache_aware on real agents and the real model: a conversation's next turn goes back to the
agent that served the previous one, and that agent's engine reuses the cached prompt."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from core_cluster import agents, collect, desired_state, unique_name

from paddler.balancer import Balancer, BalancerConfig
from paddler.plugins import get_plugin_manager
from paddler.policies import use_policy
from paddler.wire import (
    ContentToken,
    ContinueFromConversationHistoryParams,
    ConversationMessage,
    Done,
    ResponseEnvelope,
)

pytestmark = [pytest.mark.anyio, pytest.mark.model]


def turn(history: tuple[ConversationMessage, ...]) -> ContinueFromConversationHistoryParams:
    return ContinueFromConversationHistoryParams(
        add_generation_prompt=True,
        conversation_history=history,
        enable_thinking=False,
        max_tokens=12,
    )


async def two_turns(
    balancer: Balancer, topics: list[str]
) -> list[tuple[tuple[str | None, Done], tuple[str | None, Done]]]:
    """Each topic's first turn, one after another; then each one's second turn.

    Returns (agent, Done) of both turns per topic. Turns run one at a time, so every agent
    is idle whenever a request is placed.
    """
    histories: dict[str, tuple[ConversationMessage, ...]] = {}
    firsts: dict[str, tuple[str | None, Done]] = {}
    for topic in topics:
        history = (
            ConversationMessage(role="system", content=f"You answer questions about {topic}."),
            ConversationMessage(role="user", content=f"Say one thing about {topic}."),
        )
        items = await collect(balancer, turn(history))
        assert all(isinstance(i, ResponseEnvelope) for i in items)
        reply = "".join(i.response.text for i in items if isinstance(i.response, ContentToken))
        done = items[-1].response
        assert isinstance(done, Done)
        firsts[topic] = (items[-1].generated_by, done)
        histories[topic] = (
            *history,
            ConversationMessage(role="assistant", content=reply),
            ConversationMessage(role="user", content="And another?"),
        )
    results = []
    for topic in topics:
        items = await collect(balancer, turn(histories[topic]))
        done = items[-1].response
        assert isinstance(done, Done)
        results.append((firsts[topic], (items[-1].generated_by, done)))
    return results


async def test_second_turns_return_to_their_agent_and_reuse_its_cache(model_path: Path) -> None:
    pm = get_plugin_manager(entry_points=False)
    use_policy(pm, "cache_aware")
    name = unique_name()
    async with Balancer(BalancerConfig(inproc_name=name), plugin_manager=pm) as balancer:
        await balancer.set_desired_state(desired_state(model_path))
        async with agents(name, 3, slots=1):
            with anyio.fail_after(120):
                await balancer.wait_agents(3)

            # cache_aware (chosen before the agents joined: they report what their slots hold
            # only to a balancer whose policy reads it)
            aware = await two_turns(balancer, ["ships", "maps", "bread"])
            assert len({first_agent for (first_agent, _), _ in aware}) == 3  # spread first
            for (first_agent, first), (second_agent, second) in aware:
                assert second_agent == first_agent
                # the whole first prompt (and the reply after it) was already in the slot
                assert second.usage.cached_prompt_tokens >= first.usage.prompt_tokens

            use_policy(pm, "least_busy")
            # least busy: every request finds all agents idle and goes to the first one, whose
            # one slot the other conversations have overwritten by the time a second turn
            # comes: it evaluates its whole prompt again.
            blind = await two_turns(balancer, ["rivers", "owls", "tea"])
            missed = [
                b
                for (_, a), (_, b) in blind
                if b.usage.cached_prompt_tokens < a.usage.prompt_tokens
            ]
            assert missed, f"least_busy reused every conversation's cache: {blind}"
