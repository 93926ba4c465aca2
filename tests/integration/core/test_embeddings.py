"""An embedding batch split across two real agents and merged back."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from core_cluster import cluster, desired_state, wait_applied

from paddler.wire import (
    L2,
    Embedding,
    EmbeddingDone,
    EmbeddingInputDocument,
    GenerateEmbeddingBatchParams,
    PoolingType,
    ResponseEnvelope,
)

pytestmark = [pytest.mark.anyio, pytest.mark.model]


async def test_batch_is_split_over_agents_and_merged(model_path: Path) -> None:
    async with cluster(model_path, agent_count=2, slots=2) as (balancer, started):
        state = desired_state(model_path, enable_embeddings=True, pooling_type=PoolingType.MEAN)
        await balancer.set_desired_state(state)
        for agent in started:
            await wait_applied(agent, balancer)
        await balancer.wait_agents(2)
        documents = tuple(
            EmbeddingInputDocument(id=f"doc-{i}", content=f"sentence number {i}") for i in range(6)
        )
        batch = GenerateEmbeddingBatchParams(input_batch=documents, normalization_method=L2())
        async with balancer.embed(batch) as stream:
            items = [item async for item in stream]
    assert all(isinstance(item, ResponseEnvelope) for item in items)
    embeddings = [i for i in items if isinstance(i.response, Embedding)]
    assert sorted(e.response.source_document_id for e in embeddings) == [d.id for d in documents]
    assert {e.generated_by for e in embeddings} == {"agent-0", "agent-1"}
    assert isinstance(items[-1].response, EmbeddingDone)
    assert sum(isinstance(i.response, EmbeddingDone) for i in items) == 1


async def test_a_huge_batch_never_fills_the_buffer_for_everyone_else(model_path: Path) -> None:
    """12 chunks for one slot and a 2-place buffer: the batch waits its turn chunk by chunk,
    and a small batch sent meanwhile is served too, with no 503 anywhere."""
    async with cluster(model_path, agent_count=1, slots=1, max_buffered_requests=2) as (
        balancer,
        (agent,),
    ):
        state = desired_state(
            model_path,
            enable_embeddings=True,
            pooling_type=PoolingType.MEAN,
            embedding_batch_size=1,
        )
        await balancer.set_desired_state(state)
        await wait_applied(agent, balancer)
        await balancer.wait_agents(1)

        def batch(prefix: str, count: int) -> GenerateEmbeddingBatchParams:
            documents = tuple(
                EmbeddingInputDocument(id=f"{prefix}-{i}", content=f"text {i}")
                for i in range(count)
            )
            return GenerateEmbeddingBatchParams(input_batch=documents, normalization_method=L2())

        results: dict[str, list[object]] = {}

        async def run(name: str, params: GenerateEmbeddingBatchParams) -> None:
            async with balancer.embed(params) as stream:
                results[name] = [item async for item in stream]

        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "huge", batch("huge", 12))
            with anyio.fail_after(30):
                await balancer.wait_slots_busy(1)  # the huge batch holds the only slot
            tg.start_soon(run, "small", batch("small", 1))
    for name, count in (("huge", 12), ("small", 1)):
        items = results[name]
        assert all(isinstance(i, ResponseEnvelope) for i in items), items
        assert sum(isinstance(i.response, Embedding) for i in items) == count  # type: ignore[union-attr]
