"""A request whose reader stops reading is stopped once its route holds ROUTE_LIMIT items:
the agent stops generating, the reader gets an error after what was queued, the slot serves
the next request. (The limit is lowered here so the test needs dozens of tokens, not 4096.)"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from core_cluster import cluster, collect, prompt

from paddler.balancer import _connection, _stream
from paddler.wire import Done, ErrorEnvelope, ResponseEnvelope

pytestmark = [pytest.mark.anyio, pytest.mark.model]


async def test_an_unread_stream_is_stopped_and_its_slot_freed(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_connection, "ROUTE_LIMIT", 16)
    monkeypatch.setattr(_stream, "ROUTE_LIMIT", 16)
    async with cluster(model_path, agent_count=1) as (balancer, (agent,)):
        async with balancer.generate(prompt(max_tokens=900, text="Count to 1000.")) as stream:
            first = await stream.__anext__()
            assert isinstance(first, ResponseEnvelope)
            with anyio.fail_after(60):  # the agent stops generating although nobody reads
                await agent.wait_idle()
            rest = [item async for item in stream]
        assert 1 <= len(rest) <= 17
        last = rest[-1]
        assert isinstance(last, ErrorEnvelope), last
        assert "16 items pile up" in last.error.description
        after = await collect(balancer, prompt(max_tokens=4))
        assert isinstance(after[-1].response, Done)
