"""``paddler.client.ManagementClient`` (async and sync) against a real cluster."""

from __future__ import annotations

import anyio
import pytest
from e2e_cluster import Cluster

from paddler.client import HTTPStatusError, ManagementClient, SyncManagementClient
from paddler.wire import AgentStateApplicationStatus, LocalToAgentModel

pytestmark = [pytest.mark.e2e, pytest.mark.model]


@pytest.mark.anyio
async def test_snapshots_and_agent_rpcs(cluster: Cluster) -> None:
    async with ManagementClient(cluster.management_url) as management:
        assert await management.health() == "OK"
        agents = (await management.agents()).agents
        assert len(agents) == 1
        agent = agents[0]
        assert agent.name == "client-agent" and agent.slots_total == 2
        assert agent.state_application_status is AgentStateApplicationStatus.APPLIED
        assert (await management.buffered_requests()).buffered_requests_current == 0
        metadata = await management.model_metadata(agent.id)
        assert metadata is not None and metadata.metadata["general.architecture"] == "llama"
        assert await management.chat_template_override(agent.id) is None
        assert "paddler_slots_total 2" in await management.metrics()
        with pytest.raises(HTTPStatusError) as info:
            await management.model_metadata("no-such-agent")
        assert info.value.status_code == 404
        with anyio.fail_after(5):
            async for snapshot in management.buffered_requests_stream():
                assert snapshot.buffered_requests_current == 0
                break


@pytest.mark.anyio
async def test_desired_and_applicable_state(cluster: Cluster) -> None:
    async with ManagementClient(cluster.management_url) as management:
        desired = await management.balancer_desired_state()
        assert desired.model == LocalToAgentModel(str(cluster.model_path))
        applicable = await management.balancer_applicable_state()
        assert applicable is not None and applicable.model == desired.model
        await management.put_balancer_desired_state(desired)
        assert await management.balancer_desired_state() == desired


def test_sync_management_client(cluster: Cluster) -> None:
    with SyncManagementClient(cluster.management_url) as management:
        assert management.health() == "OK"
        assert len(management.agents().agents) == 1
        first = next(iter(management.agents_stream()))
        assert first.agents[0].name == "client-agent"
