"""Real clusters over inproc:// with the demo model, shared per module to stay quick.

A uniquely named module (not conftest) so that test modules import it unambiguously.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import attrs

from paddler.agent import Agent, AgentConfig
from paddler.balancer import Balancer, BalancerConfig
from paddler.wire import (
    DEFAULT_POOL,
    BalancerDesiredState,
    ContinueFromRawPromptParams,
    InferenceParameters,
    LocalToAgentModel,
)

_names = itertools.count()


def small_parameters(**changes: Any) -> InferenceParameters:
    """Deterministic sampling and a small context, so several engines fit in memory."""
    fields: dict[str, Any] = {"context_size": 1024, "n_batch": 256, **changes}
    return attrs.evolve(InferenceParameters.deterministic(), **fields)


def desired_state(model_path: Path, **changes: Any) -> BalancerDesiredState:
    return BalancerDesiredState(
        model=LocalToAgentModel(str(model_path)), inference_parameters=small_parameters(**changes)
    )


def prompt(max_tokens: int = 8, text: str = "Count to ten:") -> ContinueFromRawPromptParams:
    return ContinueFromRawPromptParams(
        raw_prompt=f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n",
        max_tokens=max_tokens,
    )


def unique_name() -> str:
    return f"core-it-{next(_names)}"


@contextlib.asynccontextmanager
async def agents(
    name: str, count: int, *, slots: int = 1, pool: str = DEFAULT_POOL, threads: int | None = None
) -> AsyncIterator[list[Agent]]:
    """``count`` agents joining ``pool``, named ``agent-<i>`` (``<pool>-<i>`` in another pool)."""
    async with contextlib.AsyncExitStack() as stack:
        started = []
        for index in range(count):
            config = AgentConfig(
                management_url=f"inproc://{name}",
                slots=slots,
                name=f"agent-{index}" if pool == DEFAULT_POOL else f"{pool}-{index}",
                pool=pool,
                # Several engines decode at once here: one llama.cpp thread each, or their
                # spinning threads slow each other down many times over on 2 cores.
                threads=threads or (1 if count > 1 else None),
            )
            started.append(await stack.enter_async_context(Agent(config)))
        yield started


@contextlib.asynccontextmanager
async def cluster(
    model_path: Path, *, agent_count: int, slots: int = 1, **config: Any
) -> AsyncIterator[tuple[Balancer, list[Agent]]]:
    name = unique_name()
    async with Balancer(BalancerConfig(inproc_name=name, **config)) as balancer:
        await balancer.set_desired_state(desired_state(model_path))
        async with agents(name, agent_count, slots=slots) as started:
            with anyio.fail_after(60):
                await balancer.wait_agents(agent_count)
            yield balancer, started


async def collect(balancer: Balancer, params: Any = None, *, pool: str = DEFAULT_POOL) -> list[Any]:
    async with balancer.generate(params or prompt(), pool=pool) as stream:
        return [item async for item in stream]


async def wait_applied(agent: Agent, balancer: Balancer) -> None:
    """Wait until ``agent`` has received the balancer's current state and applied it."""
    with anyio.fail_after(60):
        await agent.wait_applied(balancer.applicable_state)
