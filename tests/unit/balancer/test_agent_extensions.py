"""What the balancer does with each agent-socket extension, and with Paddler agents' counts."""

from __future__ import annotations

import anyio
import pytest
from balancer_fakes import FakeAgent

from paddler.balancer import Balancer, BalancerConfig
from paddler.plugins import get_plugin_manager
from paddler.wire import (
    L2,
    ContinueFromRawPromptParams,
    Embedding,
    EmbeddingDone,
    EmbeddingInputDocument,
    GenerateEmbeddingBatchParams,
    InferenceParameters,
    SamplingOverrides,
    converter,
)
from paddler.wire import BalancerDesiredState as State

pytestmark = pytest.mark.anyio

PROMPT = ContinueFromRawPromptParams(raw_prompt="hi", max_tokens=8)
OVERRIDES = SamplingOverrides(temperature=0.2, seed=4)


def balancer() -> Balancer:
    return Balancer(
        BalancerConfig(buffered_request_timeout=2.0),
        plugin_manager=get_plugin_manager(entry_points=False),
    )


@pytest.mark.parametrize(
    ("extensions", "expected"),
    [(frozenset(), None), (frozenset({"sampling_overrides"}), OVERRIDES)],
)
async def test_overrides_go_only_to_agents_that_announced_them(
    extensions: frozenset[str], expected: SamplingOverrides | None
) -> None:
    """A Paddler agent (no extensions) gets Paddler's Request, and still answers; ours gets
    the overrides."""
    async with balancer() as b, anyio.create_task_group() as tg:
        agent = FakeAgent(b, "a1", 1)
        tg.start_soon(agent.run)
        b.accept_agent(agent.agent_id, agent.balancer_side, extensions=extensions)
        await agent.send_stream.send(agent.registration())
        with anyio.fail_after(5):
            await b.wait_agents(1)
            async with b.generate(PROMPT, overrides=OVERRIDES) as stream:
                items = [item async for item in stream]
        tg.cancel_scope.cancel()
    assert items[-1].response.usage.content_tokens == 2
    (request,) = agent.requests
    assert request.sampling_overrides == expected
    assert ('"sampling_overrides"' in converter.dumps(request)) is (expected is not None)


async def test_a_drain_is_acknowledged_only_to_agents_that_announced_it() -> None:
    async with balancer() as b, anyio.create_task_group() as tg:
        paddler = FakeAgent(b, "rust", 1)
        tg.start_soon(paddler.run)
        b.accept_agent("rust", paddler.balancer_side, extensions=frozenset())
        await paddler.send_stream.send(paddler.registration())
        with anyio.fail_after(5):
            await b.wait_agents(1)
            await paddler.set_slots(0)
            await b.wait_statistics(lambda s: s.slots_total == 0)
            await paddler.set_slots(1)
            await b.wait_statistics(lambda s: s.slots_total == 1)
            async with b.generate(PROMPT) as stream:  # in order after any ack
                [item async for item in stream]
        tg.cancel_scope.cancel()
    assert len(paddler.versions) == 1  # the handshake's; no acknowledgement


async def test_slots_processing_is_seeded_from_register_agent() -> None:
    """As Paddler: an agent that registers while serving 2 requests (a reconnect) has those
    slots counted busy; ours then lowers the count as the agent reports fewer in flight."""
    async with balancer() as b, anyio.create_task_group() as tg:
        agent = FakeAgent(b, "a1", 3, busy_at_registration=2)
        tg.start_soon(agent.run)
        await agent.start()
        with anyio.fail_after(5):
            await b.wait_agents(1)
            assert b.agents_snapshot().agents[0].slots_processing == 2
            assert b.statistics().slots_busy == 2
            await agent.set_slots(3, processing=1)  # one of them ended
            await b.wait_statistics(lambda s: s.slots_busy == 1)
            await agent.set_slots(3, processing=3)  # never raised by the agent's own count
            await agent.set_slots(3, processing=0)
            await b.wait_idle()
        tg.cancel_scope.cancel()


async def test_embedding_token_counts_are_summed_and_not_forwarded() -> None:
    """The agent's document_tokens feed ``prompt_tokens``; clients get Paddler's object."""
    async with balancer() as b, anyio.create_task_group() as tg:
        agent = FakeAgent(b, "a1", 2, count_embedding_tokens=True)
        tg.start_soon(agent.run)
        await agent.start()
        await b.set_desired_state(
            State(inference_parameters=InferenceParameters(enable_embeddings=True))
        )
        documents = ("one two three", "four five", "six")
        params = GenerateEmbeddingBatchParams(
            input_batch=tuple(
                EmbeddingInputDocument(id=str(i), content=text) for i, text in enumerate(documents)
            ),
            normalization_method=L2(),
        )
        with anyio.fail_after(5):
            await b.wait_agents(1)
            async with b.embed(params) as stream:
                items = [item.response async for item in stream]
        tg.cancel_scope.cancel()
    embeddings = [item for item in items if isinstance(item, Embedding)]
    assert len(embeddings) == 3 and isinstance(items[-1], EmbeddingDone)
    assert all(e.document_tokens is None for e in embeddings)
    assert "document_tokens" not in converter.dumps(embeddings[0])
    assert (stream.prompt_tokens, stream.counted_documents) == (6, 3)
