"""The agent resolves and loads the desired state's ``multimodal_projection`` (spec §5.3, §6.1):
a projector that is missing or cannot load is ``MultimodalProjectionCannotBeLoaded`` in the
agent's issues (the agent keeps retrying and serves nothing), and a good one clears it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import attrs
import pytest
from core_cluster import (
    agents,
    collect,
    desired_state,
    small_parameters,
    unique_name,
    wait_applied,
)

from image_samples import image_uri
from paddler.agent import Agent
from paddler.balancer import Balancer, BalancerConfig
from paddler.testing.make_projector import write_projector
from paddler.wire import (
    AgentStateApplicationStatus,
    ContinueFromConversationHistoryParams,
    ConversationMessage,
    Done,
    ImageExceedsBatchSize,
    ImageUrl,
    ImageUrlPart,
    LocalToAgentModel,
    MultimodalProjectionCannotBeLoaded,
    TextPart,
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


def image_request(url: str) -> ContinueFromConversationHistoryParams:
    return ContinueFromConversationHistoryParams(
        add_generation_prompt=True,
        conversation_history=(
            ConversationMessage(
                role="user",
                content=(TextPart("What is this?"), ImageUrlPart(ImageUrl(url))),
            ),
        ),
        enable_thinking=False,
        max_tokens=4,
    )


async def test_images_through_balancer_and_agent(
    model_path: Path, projector_path: Path, tmp_path: Path
) -> None:
    """An image request through the balancer and the agent protocol: its usage counts the
    image; with a 256-token projector and n_batch 128 the terminal is ImageExceedsBatchSize
    with both numbers, and the agent serves on."""
    big = write_projector(tmp_path / "big.gguf", image_size=128, patch_size=8)
    name = unique_name()
    async with Balancer(BalancerConfig(inproc_name=name)) as balancer:
        state = desired_state(model_path)
        await balancer.set_desired_state(
            attrs.evolve(state, multimodal_projection=LocalToAgentModel(str(projector_path)))
        )
        async with agents(name, 1) as (agent,):
            await wait_applied(agent, balancer)
            items = await collect(balancer, image_request(image_uri()))
            done = items[-1].response
            assert isinstance(done, Done)
            assert done.usage.input_image_tokens == 16

            await balancer.set_desired_state(
                attrs.evolve(
                    state,
                    multimodal_projection=LocalToAgentModel(str(big)),
                    inference_parameters=small_parameters(n_batch=128),
                )
            )
            await wait_applied(agent, balancer)
            items = await collect(balancer, image_request(image_uri()))
            assert [i.response for i in items] == [
                ImageExceedsBatchSize(image_tokens=256, n_batch=128)
            ]
            items = await collect(balancer)
            assert isinstance(items[-1].response, Done)
