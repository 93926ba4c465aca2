"""The agent resolves and loads the desired state's ``multimodal_projection`` (spec §5.3, §6.1):
a projector that is missing or cannot load is ``MultimodalProjectionCannotBeLoaded`` in the
agent's issues (the agent keeps retrying and serves nothing), and a good one clears it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import attrs
import pytest
from core_cluster import agents, desired_state, unique_name

from paddler.agent import Agent
from paddler.balancer import Balancer, BalancerConfig
from paddler.wire import (
    AgentStateApplicationStatus,
    LocalToAgentModel,
    MultimodalProjectionCannotBeLoaded,
)

pytestmark = [pytest.mark.model, pytest.mark.anyio]


async def wait_status(agent: Agent, predicate: Callable[[Agent], bool], what: str) -> None:
    changes = agent.status.changes
    with anyio.fail_after(60):
        while not predicate(agent):
            await changes.wait_beyond(changes.version)


def has_projector_issue(path: Path) -> Callable[[Agent], bool]:
    issue = MultimodalProjectionCannotBeLoaded(model_path=str(path))
    return lambda agent: issue in agent.status.issues


async def test_bad_then_missing_then_good_projector(
    model_path: Path, projector_path: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "invalid_mmproj.gguf"
    bad.write_bytes(b"\0" * 4096)
    missing = tmp_path / "missing_mmproj.gguf"
    name = unique_name()
    async with Balancer(BalancerConfig(inproc_name=name)) as balancer:
        state = desired_state(model_path)
        await balancer.set_desired_state(
            attrs.evolve(state, multimodal_projection=LocalToAgentModel(str(bad)))
        )
        async with agents(name, 1) as (agent,):
            await wait_status(agent, has_projector_issue(bad), "the invalid projector's issue")
            assert agent.status.slots_total == 0
            assert agent.engine is None
            assert agent.status.state_application_status is not (
                AgentStateApplicationStatus.APPLIED
            )

            await balancer.set_desired_state(
                attrs.evolve(state, multimodal_projection=LocalToAgentModel(str(missing)))
            )
            await wait_status(agent, has_projector_issue(missing), "the missing projector's issue")

            await balancer.set_desired_state(
                attrs.evolve(state, multimodal_projection=LocalToAgentModel(str(projector_path)))
            )
            await wait_status(
                agent,
                lambda a: (
                    a.status.state_application_status is AgentStateApplicationStatus.APPLIED
                    and a.status.slots_total == 1
                ),
                "the good projector to load",
            )
            assert not any(
                isinstance(i, MultimodalProjectionCannotBeLoaded) for i in agent.status.issues
            )
            assert agent.engine is not None and agent.engine.multimodal
