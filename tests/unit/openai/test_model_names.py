"""Which pool an OpenAI ``model`` selects, over a real ``Balancer`` (no agents needed: a pool
exists once its desired state is set)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from paddler._tenancy import serving_tenant
from paddler.balancer import Balancer, BalancerConfig
from paddler.plugins import get_plugin_manager
from paddler.wire import BalancerDesiredState
from paddler_server._api_keys import ApiKey, KeyTenant
from paddler_server.openai._errors import OpenAIError
from paddler_server.openai._models import ModelNames

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "balancer"))

from balancer_fakes import FakeAgent

pytestmark = pytest.mark.anyio


@pytest.fixture
async def balancer() -> AsyncIterator[Balancer]:
    async with Balancer(
        BalancerConfig(), plugin_manager=get_plugin_manager(entry_points=False)
    ) as b:
        yield b


def names(balancer: Balancer) -> ModelNames:
    return ModelNames(balancer, served_name="smol", aliases={"fast": "chat"})


async def test_with_only_the_default_pool_any_model_goes_there(balancer: Balancer) -> None:
    """Paddler's leniency: the name is echoed, the request goes to ``default``."""
    model_names = names(balancer)
    for requested in ("gpt-4o", "fast", "chat", None):
        assert model_names.pool_of(requested) == "default"
    assert await model_names.route("gpt-4o") == ("default", "gpt-4o")
    assert await model_names.route(None) == ("default", "smol")
    assert await model_names.ids() == ["smol"]


async def test_with_more_pools_the_model_names_one(balancer: Balancer) -> None:
    await balancer.set_desired_state(BalancerDesiredState(), pool="chat")
    model_names = names(balancer)
    assert model_names.pool_of("chat") == "chat"
    assert model_names.pool_of("fast") == "chat"
    assert model_names.pool_of("default") == "default"
    assert model_names.pool_of("smol") == "default"  # --served-model-name stays default's
    assert ModelNames(balancer).pool_of("default") == "default"
    assert model_names.pool_of(None) == "default"
    with pytest.raises(OpenAIError) as missing:
        model_names.pool_of("gpt-4o")
    assert (missing.value.status, missing.value.code) == (404, "model_not_found")
    assert "'gpt-4o'" in missing.value.message
    assert await model_names.ids() == []  # no agent has a model loaded: nothing is serving


async def test_a_key_with_models_reaches_only_those_pools(balancer: Balancer) -> None:
    """``models`` may name an alias; a pool outside the list is "not found" for that key,
    even while ``default`` is the only pool."""
    key = KeyTenant(ApiKey(name="k", digest=b"\0" * 32, models=("fast",)))
    model_names = names(balancer)
    with serving_tenant(key), pytest.raises(OpenAIError) as lenient:
        model_names.pool_of("anything")
    assert lenient.value.code == "model_not_found"
    with serving_tenant(key):
        assert await model_names.ids() == []
    await balancer.set_desired_state(BalancerDesiredState(), pool="chat")
    with serving_tenant(key):
        assert model_names.pool_of("chat") == "chat"
        assert model_names.pool_of("fast") == "chat"
        with pytest.raises(OpenAIError, match="The model 'default' does not exist"):
            model_names.pool_of("default")


async def test_models_lists_the_serving_pools(balancer: Balancer) -> None:
    """A pool serves once an agent has its model loaded; ``default`` keeps the id clients saw
    before the second pool (the file's stem here), which still reaches it."""
    model_names = ModelNames(balancer, aliases={"fast": "chat", "e5": "embed"})
    await balancer.set_desired_state(BalancerDesiredState(), pool="embed")  # known, no agent
    async with anyio.create_task_group() as tg:
        for agent in (
            FakeAgent(balancer, "a1", 1, model_path="/models/SmolLM2.Q4.gguf"),
            FakeAgent(balancer, "a2", 1, model_path="/models/chat.gguf", pool="chat"),
        ):
            tg.start_soon(agent.run)
            await agent.start()
        with anyio.fail_after(5):  # a safety net
            await balancer.wait_agents(2)
        assert await model_names.ids() == ["default", "chat", "SmolLM2.Q4", "fast"]
        assert model_names.pool_of("SmolLM2.Q4") == "default"
        assert model_names.pool_of("e5") == "embed"  # buffered there until an agent joins
        tg.cancel_scope.cancel()
