"""An embedding batch split across two real agents and merged back."""

from __future__ import annotations

from pathlib import Path

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
