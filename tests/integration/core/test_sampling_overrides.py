"""Per-request sampling overrides through a real balancer and agent (inproc://, real model).

The cluster samples randomly (Paddler's default parameters), so only the overrides can make
two requests agree.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest
from core_cluster import agents, prompt, unique_name

from paddler.balancer import Balancer, BalancerConfig
from paddler.wire import (
    BalancerDesiredState,
    ContentToken,
    Done,
    InferenceParameters,
    LocalToAgentModel,
    ResponseEnvelope,
    SamplingOverrides,
)

pytestmark = [pytest.mark.anyio, pytest.mark.model]


@pytest.fixture(scope="module")
async def random_cluster(model_path: Path) -> AsyncIterator[Balancer]:
    name = unique_name()
    parameters = attrs.evolve(InferenceParameters(), context_size=1024, n_batch=256)
    state = BalancerDesiredState(
        model=LocalToAgentModel(str(model_path)), inference_parameters=parameters
    )
    async with Balancer(BalancerConfig(inproc_name=name)) as balancer:
        await balancer.set_desired_state(state)
        async with agents(name, 1, slots=2):
            with anyio.fail_after(60):
                await balancer.wait_agents(1)
            yield balancer


async def generate(balancer: Balancer, overrides: Any, text: str = "Name a cat.") -> list[Any]:
    async with balancer.generate(prompt(max_tokens=24, text=text), overrides=overrides) as stream:
        items = [item async for item in stream]
    assert all(isinstance(item, ResponseEnvelope) for item in items)
    assert isinstance(items[-1].response, Done)
    return [item.response for item in items]


def content(results: list[Any]) -> str:
    return "".join(r.text for r in results if isinstance(r, ContentToken))


async def test_a_fixed_seed_makes_sampling_reproducible(random_cluster: Balancer) -> None:
    hot = SamplingOverrides(temperature=1.2, top_p=0.95, seed=1234)  # what the OpenAI layer sends
    first = content(await generate(random_cluster, hot))
    second = content(await generate(random_cluster, hot))
    others = {
        content(await generate(random_cluster, attrs.evolve(hot, seed=seed))) for seed in (1, 2)
    }
    assert first and first == second
    assert len(others | {first}) > 1  # the seed, not the prompt alone, decides the text


async def test_temperature_zero_gives_the_same_text_every_time(random_cluster: Balancer) -> None:
    greedy = SamplingOverrides(temperature=0.0, seed=7)
    texts = {content(await generate(random_cluster, greedy)) for _ in range(2)}
    (text,) = texts
    assert text


async def test_a_stop_string_ends_the_response_before_it(random_cluster: Balancer) -> None:
    greedy = SamplingOverrides(temperature=0.0)
    question = "Count from one to twenty."
    full_results = await generate(random_cluster, greedy, text=question)
    full = content(full_results)
    assert len(full) > 8
    stop = full[4:7]
    results = await generate(random_cluster, attrs.evolve(greedy, stop=(stop,)), text=question)
    assert content(results) == full[: full.index(stop)]
    assert results[-1].usage.content_tokens < full_results[-1].usage.content_tokens
