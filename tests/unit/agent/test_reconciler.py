"""The Reconciler against a small host (no agent, no balancer, no sockets): the order of a
swap's steps, the drain timeout, a crashed engine's reload and ``wait_applied``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from agent_fakes import FakeEngine, FakeLoader

from paddler.agent import AgentConfig, AgentStatus, Engine
from paddler.agent._reconciler import Reconciler
from paddler.wire import (
    AgentDesiredState,
    AgentStateApplicationStatus,
    EngineWorkerCrashed,
    InferenceParameters,
    LocalToAgentModel,
    NoModel,
)

pytestmark = pytest.mark.anyio


class Host:
    """A ReconcilerHost that records each call; ``busy`` requests hold ``wait_idle``."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.engine: Engine | None = None
        self.busy = 0
        self.idle = anyio.Event()
        self.ack: anyio.Event | None = None

    def begin_drain(self) -> anyio.Event | None:
        self.calls.append("begin_drain")
        self.ack = anyio.Event()
        return self.ack

    async def wait_idle(self) -> None:
        self.calls.append("wait_idle")
        if self.busy:
            await self.idle.wait()

    async def stop_requests(self) -> int:
        self.calls.append("stop_requests")
        stopped, self.busy = self.busy, 0
        self.idle.set()
        return stopped

    def swap_engine(self, engine: Engine | None) -> None:
        label = engine.label if isinstance(engine, FakeEngine) else None
        self.calls.append(f"swap {label}")
        self.engine = engine


def state_for(path: Path, temperature: float = 0.7) -> AgentDesiredState:
    return AgentDesiredState(
        chat_template_override=None,
        inference_parameters=InferenceParameters(temperature=temperature),
        model=LocalToAgentModel(str(path)),
        multimodal_projection=NoModel(),
    )


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF")
    return path


@asynccontextmanager
async def running(
    host: Host, loader: FakeLoader, **config: float
) -> AsyncIterator[tuple[Reconciler, AgentStatus]]:
    agent_config = AgentConfig(management_url="inproc://unused", slots=2, **config)
    status = AgentStatus(desired_slots_total=2)
    reconciler = Reconciler(host, loader, config=agent_config, status=status)
    async with anyio.create_task_group() as tg:
        tg.start_soon(reconciler.run)
        with anyio.fail_after(10):
            yield reconciler, status
        tg.cancel_scope.cancel()


async def test_a_state_is_loaded_on_the_agents_slots_and_reported(model_file: Path) -> None:
    host, loader = Host(), FakeLoader()
    async with running(host, loader) as (reconciler, status):
        state = state_for(model_file)
        reconciler.set_desired(state)
        await reconciler.wait_applied(state)
    assert host.calls == ["swap e0:"]  # nothing to drain before the first engine
    assert host.engine is loader.engines[0]
    (spec,) = loader.specs
    assert spec.model_path == model_file and spec.slots == 2
    assert spec.parameters.temperature == 0.7
    assert status.slots_total == 2 and status.model_path == str(model_file)
    assert status.state_application_status is AgentStateApplicationStatus.APPLIED


async def test_a_swap_drains_then_closes_the_old_engine_then_loads(model_file: Path) -> None:
    """The old engine stays until the drain is acknowledged and the last request ended."""
    host, loader = Host(), FakeLoader()
    async with running(host, loader) as (reconciler, _):
        first = state_for(model_file)
        reconciler.set_desired(first)
        await reconciler.wait_applied(first)
        host.busy = 1
        second = state_for(model_file, temperature=0.1)
        reconciler.set_desired(second)
        await anyio.wait_all_tasks_blocked()
        assert host.calls[-1] == "begin_drain"
        assert host.ack is not None
        host.ack.set()
        await anyio.wait_all_tasks_blocked()
        assert host.calls[-1] == "wait_idle"
        assert not loader.engines[0].closed  # a request is still in flight on it
        host.busy = 0
        host.idle.set()
        await reconciler.wait_applied(second)
    assert host.calls == ["swap e0:", "begin_drain", "wait_idle", "swap None", "swap e1:"]
    assert loader.engines[0].closed
    assert host.engine is loader.engines[1]
    assert loader.specs[1].parameters.temperature == 0.1


async def test_requests_past_the_drain_timeout_are_stopped(model_file: Path) -> None:
    host, loader = Host(), FakeLoader()
    async with running(host, loader, drain_timeout=0) as (reconciler, _):
        first = state_for(model_file)
        reconciler.set_desired(first)
        await reconciler.wait_applied(first)
        host.busy = 3
        second = state_for(model_file, temperature=0.1)
        reconciler.set_desired(second)
        while host.ack is None:
            await anyio.wait_all_tasks_blocked()
        host.ack.set()
        await reconciler.wait_applied(second)
    assert host.calls[1:] == [
        "begin_drain",
        "wait_idle",
        "stop_requests",
        "wait_idle",
        "swap None",
        "swap e1:",
    ]


async def test_a_crashed_engine_is_replaced_and_the_crash_is_an_issue(model_file: Path) -> None:
    host, loader = Host(), FakeLoader()
    async with running(host, loader) as (reconciler, status):
        state = state_for(model_file)
        reconciler.set_desired(state)
        await reconciler.wait_applied(state)
        loader.engines[0].crash("was killed by signal 9")
        await anyio.wait_all_tasks_blocked()
        await reconciler.wait_applied(state)
    assert host.calls == ["swap e0:", "swap None", "swap e1:"]  # nothing to drain: it died
    assert host.engine is loader.engines[1]
    assert status.issues == (
        EngineWorkerCrashed(error="the engine worker was killed by signal 9; it was restarted"),
    )


async def test_wait_applied_waits_for_a_state_that_has_not_arrived(model_file: Path) -> None:
    """Given the state it waits for, ``wait_applied`` does not return for the one before."""
    host, loader = Host(), FakeLoader()
    async with running(host, loader) as (reconciler, _):
        first, second = state_for(model_file), state_for(model_file, temperature=0.1)
        reconciler.set_desired(first)
        await reconciler.wait_applied(first)
        returned = anyio.Event()

        async def wait_second() -> None:
            await reconciler.wait_applied(second)
            returned.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait_second)
            await anyio.wait_all_tasks_blocked()
            assert not returned.is_set()  # ``first`` is applied, ``second`` not yet sent
            reconciler.set_desired(second)
            while host.ack is None:
                await anyio.wait_all_tasks_blocked()
            host.ack.set()
        assert returned.is_set()
    assert reconciler.applied == second and len(loader.engines) == 2
