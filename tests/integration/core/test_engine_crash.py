"""An agent whose engine worker dies: the requests on it end with an error, the agent says what
happened, loads the model again, and the cluster serves on. Faults are forced with the worker's
test hook, a real SIGSEGV in the worker process."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from core_cluster import cluster, collect, prompt

from paddler.engine import _engine as engine_module
from paddler.engine._worker import FAULT_ENV
from paddler.wire import (
    AgentStateApplicationStatus,
    ContentToken,
    Done,
    EngineWorkerCrashed,
    ExtraBufferTypesDisabled,
    ResponseEnvelope,
    SamplerError,
)

pytestmark = [pytest.mark.anyio, pytest.mark.model]

CRASH = "CRASH-THE-WORKER"


async def test_an_agent_restarts_a_crashed_worker_and_serves_again(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAULT_ENV, f"prompt:{CRASH}")
    async with cluster(model_path, agent_count=1, slots=2) as (balancer, [agent]):
        first_engine = agent.engine
        async with balancer.generate(prompt(max_tokens=400)) as running:
            first = await running.__anext__()
            assert isinstance(first.response, ContentToken)
            crashed = await collect(balancer, prompt(text=CRASH))
            rest = [item async for item in running]
        for items in (crashed, rest):
            last = items[-1]
            assert isinstance(last, ResponseEnvelope), last
            assert isinstance(last.response, SamplerError), last
            assert "SIGSEGV" in last.response.message
        # Requests sent meanwhile wait in the buffer for the reloaded model, then run.
        after = await collect(balancer, prompt())
        assert isinstance(after[-1].response, Done)
        assert agent.engine is not first_engine
        issues = agent.status.issues
        assert any(isinstance(i, EngineWorkerCrashed) and "SIGSEGV" in i.error for i in issues)
        assert agent.status.state_application_status is AgentStateApplicationStatus.APPLIED
        (snapshot,) = balancer.agents_snapshot().agents
        assert any(isinstance(i, EngineWorkerCrashed) for i in snapshot.issues)


async def test_the_agent_reports_running_without_the_extra_kernels(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "_extra_buffer_types_fault", None)
    monkeypatch.setenv(FAULT_ENV, "extra_buffer_types")
    async with cluster(model_path, agent_count=1) as (balancer, [agent]):
        assert isinstance((await collect(balancer))[-1].response, Done)
        with anyio.fail_after(10):
            while not any(isinstance(i, ExtraBufferTypesDisabled) for i in agent.status.issues):
                await agent.status.changes.wait_beyond(agent.status.changes.version)
        (issue,) = [i for i in agent.status.issues if isinstance(i, ExtraBufferTypesDisabled)]
        assert "SIGSEGV" in issue.error
