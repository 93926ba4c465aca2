"""The agent's status details that Paddler 4.1 reports a particular way (spec §3.2, §5.3, §6.1),
seen through a real Balancer over inproc:// with a fake engine (no model)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import anyio
import pytest
from agent_fakes import FakeLoader

from paddler.agent import Agent, AgentConfig
from paddler.balancer import Balancer, BalancerConfig
from paddler.wire import (
    AgentControllerSnapshot,
    AgentStateApplicationStatus,
    BalancerDesiredState,
    InferenceParameters,
    LocalToAgentModel,
    ModelCannotBeLoaded,
    SlotCannotStart,
)

pytestmark = pytest.mark.anyio

Status = AgentStateApplicationStatus
_names = itertools.count()


def state_for(path: Path | None) -> BalancerDesiredState:
    if path is None:
        return BalancerDesiredState.default()
    return BalancerDesiredState(
        model=LocalToAgentModel(str(path)), inference_parameters=InferenceParameters()
    )


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF")
    return path


async def watch_until(balancer: Balancer, done: Any) -> list[AgentControllerSnapshot]:
    """Every snapshot of the one agent until ``done(snapshot)``."""
    seen: list[AgentControllerSnapshot] = []
    async for pool in balancer.subscribe_agents():
        if pool.agents:
            seen.append(pool.agents[0])
            if done(seen[-1]):
                return seen
    return seen


async def test_download_is_indeterminate_until_a_download_knows_its_size() -> None:
    """Paddler's initial status says download_indeterminate: true; so does ours."""
    agent = Agent(AgentConfig(management_url="inproc://nowhere", slots=1))
    assert agent.status.snapshot().download_indeterminate is True


async def test_stuck_after_the_second_failed_attempt_and_still_retried(model_file: Path) -> None:
    """Fresh → AttemptedAndRetrying (first failure) → Stuck (second), as Paddler; a fix is
    still picked up afterwards."""
    name = f"status-{next(_names)}"
    loader = FakeLoader()
    loader.fail = RuntimeError("bad gguf")
    async with Balancer(BalancerConfig(inproc_name=name)) as balancer:
        await balancer.set_desired_state(state_for(model_file))
        config = AgentConfig(management_url=f"inproc://{name}", slots=1, status_interval=0.05)
        async with Agent(config, engine_loader=loader) as agent:
            with anyio.fail_after(10):
                seen = await watch_until(
                    balancer, lambda s: s.state_application_status is Status.STUCK
                )
                attempts_when_stuck = len(loader.specs)
                loader.fail = None
                await agent.wait_applied()
    statuses = [s.state_application_status for s in seen]
    assert Status.ATTEMPTED_AND_RETRYING in statuses
    assert statuses.index(Status.ATTEMPTED_AND_RETRYING) < statuses.index(Status.STUCK)
    assert attempts_when_stuck == 2
    assert seen[-1].issues == (ModelCannotBeLoaded(model_path=str(model_file)),)


async def test_a_context_that_cannot_start_is_one_issue_per_slot(model_file: Path) -> None:
    from paddler.engine._errors import SlotCannotStart as EngineSlotCannotStart

    name = f"status-{next(_names)}"
    loader = FakeLoader()
    loader.fail = EngineSlotCannotStart("n_seq_max=3 is too many")
    async with Balancer(BalancerConfig(inproc_name=name)) as balancer:
        await balancer.set_desired_state(state_for(model_file))
        config = AgentConfig(management_url=f"inproc://{name}", slots=3)
        async with Agent(config, engine_loader=loader):
            with anyio.fail_after(10):
                seen = await watch_until(balancer, lambda s: bool(s.issues))
    assert seen[-1].issues == tuple(
        SlotCannotStart(error="n_seq_max=3 is too many", slot_index=i) for i in range(3)
    )


async def test_applying_a_new_state_clears_the_issues(model_file: Path) -> None:
    """A load failure of the old state is not reported under a state that does not load it."""
    name = f"status-{next(_names)}"
    loader = FakeLoader()
    loader.fail = RuntimeError("bad gguf")
    async with Balancer(BalancerConfig(inproc_name=name)) as balancer:
        await balancer.set_desired_state(state_for(model_file))
        config = AgentConfig(management_url=f"inproc://{name}", slots=1)
        async with Agent(config, engine_loader=loader):
            with anyio.fail_after(10):
                await watch_until(balancer, lambda s: bool(s.issues))
                await balancer.set_desired_state(state_for(None))  # no model: nothing to load
                seen = await watch_until(
                    balancer, lambda s: s.state_application_status is Status.APPLIED
                )
            entry = seen[-1]
    assert entry.state_application_status is Status.APPLIED
    assert entry.issues == ()
