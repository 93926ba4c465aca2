"""The pools in ``ManagementClient`` and ``paddler set-state --pool``, over real HTTP to a real
in-process balancer's management app (no agents: these are the desired-state paths; the
agents' side is in tests/e2e/test_pools_management_api.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import attrs
import pytest

from paddler.balancer import Balancer
from paddler.client import HTTPStatusError, ManagementClient
from paddler.metrics import BalancerMetrics
from paddler.wire import BalancerDesiredState, LocalToAgentModel, NoModel
from paddler_server._set_state import SetStateError, changed_state, set_state
from paddler_server.management import create_management_app
from paddler_server.serve import serve_apps

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def management_url() -> AsyncIterator[str]:
    async with Balancer() as balancer, anyio.create_task_group() as tg:
        app = create_management_app(balancer, metrics=BalancerMetrics())
        [(host, port)] = await tg.start(serve_apps, [(app, "127.0.0.1", 0)])
        yield f"http://{host}:{port}"
        tg.cancel_scope.cancel()


def with_model(path: str) -> BalancerDesiredState:
    return attrs.evolve(BalancerDesiredState.default(), model=LocalToAgentModel(path=path))


async def test_set_and_get_one_pools_state_leaves_default_alone(management_url: str) -> None:
    async with ManagementClient(management_url) as management:
        assert [p.name for p in (await management.pools()).pools] == ["default"]
        await management.set_desired_state(with_model("/models/blue.gguf"), pool="blue")

        assert (await management.get_desired_state(pool="blue")).model == LocalToAgentModel(
            path="/models/blue.gguf"
        )
        assert (await management.get_desired_state()).model == NoModel()
        assert (await management.balancer_desired_state()).model == NoModel()
        pools = (await management.pools()).pools
        assert [(p.name, p.agents, p.serving) for p in pools] == [
            ("default", 0, False),
            ("blue", 0, False),
        ]
        assert pools[1].desired_model == LocalToAgentModel(path="/models/blue.gguf")
        assert (await management.agents(pool="blue")).agents == ()
        assert (await management.buffered_requests(pool="blue")).buffered_requests_current == 0
        with anyio.fail_after(5):
            async for snapshot in management.pools_stream():
                assert [p.name for p in snapshot.pools] == ["default", "blue"]
                break


async def test_unknown_and_malformed_pools_are_http_errors(management_url: str) -> None:
    async with ManagementClient(management_url) as management:
        with pytest.raises(HTTPStatusError) as unknown:
            await management.get_desired_state(pool="nowhere")
        assert unknown.value.status_code == 404
        assert "nowhere" in str(unknown.value)
        with pytest.raises(HTTPStatusError) as malformed:
            await management.set_desired_state(BalancerDesiredState.default(), pool="no/slash")
        assert malformed.value.status_code in (400, 404)  # a slash leaves the path segment
        with pytest.raises(HTTPStatusError) as bad:
            await management.agents(pool="-dash")
        assert bad.value.status_code == 400
        assert [p.name for p in (await management.pools()).pools] == ["default"]


async def test_set_state_creates_a_new_pool_and_changes_it_again(management_url: str) -> None:
    """``set_state`` is the blocking CLI call: run on a thread while the server serves."""

    def to_4096(state: BalancerDesiredState) -> BalancerDesiredState:
        return changed_state(state, ["context_size=4096"], model_path="/m.gguf")

    def embeddings(state: BalancerDesiredState) -> BalancerDesiredState:
        return changed_state(state, ["enable_embeddings=true"])

    def run(change: Callable[[BalancerDesiredState], BalancerDesiredState], **kw: Any) -> Any:
        return anyio.to_thread.run_sync(lambda: set_state(management_url, change, **kw))

    created = await run(to_4096, wait=5.0, pool="embed")
    assert created.inference_parameters.context_size == 4096
    again = await run(embeddings, wait=5.0, pool="embed")
    assert again.inference_parameters.context_size == 4096
    assert again.inference_parameters.enable_embeddings
    async with ManagementClient(management_url) as management:
        assert await management.get_desired_state(pool="embed") == again
        assert (await management.get_desired_state()).model == NoModel()
    with pytest.raises(SetStateError, match="invalid pool name"):
        await run(lambda s: s, pool="-bad")
