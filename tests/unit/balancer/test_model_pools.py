"""Model pools in the balancer, against scripted agents over memory streams (no model)."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from balancer_fakes import FakeAgent

from paddler.balancer import (
    Balancer,
    BalancerConfig,
    FileStateStore,
    MemoryStateStore,
    PoolSnapshot,
    StateStore,
)
from paddler.errors import InvalidRequest, UnknownPool
from paddler.hookspecs import hookimpl
from paddler.metrics import BalancerMetrics
from paddler.plugins import get_plugin_manager
from paddler.policies import AgentCandidate, RequestInfo
from paddler.wire import (
    DEFAULT_POOL,
    L2,
    BalancerDesiredState,
    ContinueFromRawPromptParams,
    Done,
    EmbeddingInputDocument,
    ErrorEnvelope,
    GenerateEmbeddingBatchParams,
    LocalToAgentModel,
    NoModel,
)

pytestmark = pytest.mark.anyio

PROMPT = ContinueFromRawPromptParams(raw_prompt="hi", max_tokens=8)
MODEL_B = BalancerDesiredState(model=LocalToAgentModel(path="/models/b.gguf"))


@contextlib.asynccontextmanager
async def cluster(
    *agents: tuple[str, int, str],
    config: BalancerConfig | None = None,
    state_store: StateStore | None = None,
    plugins: Sequence[object] = (),
    **balancer_kwargs: Any,
) -> AsyncIterator[tuple[Balancer, list[FakeAgent]]]:
    """A balancer with scripted agents ``(id, slots, pool)``, all registered on return."""
    plugin_manager = get_plugin_manager(entry_points=False)
    for plugin in plugins:
        plugin_manager.register(plugin)
    async with Balancer(
        config or BalancerConfig(buffered_request_timeout=5.0),
        plugin_manager=plugin_manager,
        state_store=state_store,
        **balancer_kwargs,
    ) as balancer:
        fakes = [FakeAgent(balancer, a, slots, pool=pool) for a, slots, pool in agents]
        async with anyio.create_task_group() as tg:
            for fake in fakes:
                tg.start_soon(fake.run)
                await fake.start()
            with anyio.fail_after(5):
                await balancer.wait_agents(len(agents))
            yield balancer, fakes
            tg.cancel_scope.cancel()


async def collect(balancer: Balancer, **kwargs: Any) -> list[Any]:
    async with balancer.generate(PROMPT, **kwargs) as stream:
        return [item async for item in stream]


async def test_requests_land_only_on_their_pools_agents() -> None:
    async with cluster(("a", 1, DEFAULT_POOL), ("b", 1, "small")) as (balancer, (a, b)):
        for _ in range(3):
            assert (await collect(balancer, pool="small"))[-1].generated_by == "b"
            assert (await collect(balancer))[-1].generated_by == "a"
        # Pool "small" is busy: its next request waits although the default pool's agent is
        # free, and is served by "small"'s agent once it is free again.
        b.hold = True
        results: list[list[Any]] = []
        async with anyio.create_task_group() as tg:
            for _ in range(2):
                tg.start_soon(lambda: _append(results, collect(balancer, pool="small")))
            with anyio.fail_after(5):
                await balancer.wait_buffered(1, pool="small")
                await balancer.wait_slots_busy(1, pool="small")
            assert balancer.statistics(DEFAULT_POOL).slots_busy == 0
            b.release()
    assert [r[-1].generated_by for r in results] == ["b", "b"]
    assert len(a.requests) == 3 and len(b.requests) == 5


async def _append(results: list[list[Any]], items: Any) -> None:
    results.append(await items)


async def test_policies_see_the_pool_and_only_its_candidates() -> None:
    seen: list[tuple[str, list[str]]] = []

    class Recorder:
        @hookimpl(tryfirst=True)
        def paddler_select_agent(
            self, request: RequestInfo, candidates: Sequence[AgentCandidate]
        ) -> AgentCandidate | None:
            seen.append((request.pool, [c.id for c in candidates]))
            return None

    agents = (("a", 1, DEFAULT_POOL), ("b1", 1, "big"), ("b2", 1, "big"))
    async with cluster(*agents, plugins=[Recorder()]) as (balancer, _):
        await collect(balancer, pool="big")
        await collect(balancer)
    assert seen[0][0] == "big" and sorted(seen[0][1]) == ["b1", "b2"]
    assert seen[1] == (DEFAULT_POOL, ["a"])


async def test_unknown_pool_is_refused_by_generate_and_embed() -> None:
    batch = GenerateEmbeddingBatchParams(
        input_batch=(EmbeddingInputDocument("1", "x"),), normalization_method=L2()
    )
    async with cluster(("a", 1, DEFAULT_POOL)) as (balancer, _):
        with pytest.raises(UnknownPool, match="'nope'"):
            balancer.generate(PROMPT, pool="nope")
        with pytest.raises(UnknownPool):
            balancer.embed(batch, pool="nope")
        with pytest.raises(UnknownPool):
            await balancer.get_desired_state("nope")
        assert UnknownPool.code == 404
        assert balancer.pool_names() == (DEFAULT_POOL,)


async def test_pool_without_agents_buffers_and_is_served_when_one_joins() -> None:
    async with cluster(("a", 1, DEFAULT_POOL)) as (balancer, _):
        await balancer.set_desired_state(MODEL_B, "b")  # the pool exists, no agent yet
        assert balancer.has_pool("b") and balancer.statistics("b").agents == 0
        result: list[Any] = []
        served = anyio.Event()
        async with anyio.create_task_group() as tg:

            async def request() -> None:
                result.extend(await collect(balancer, pool="b"))
                served.set()

            tg.start_soon(request)
            with anyio.fail_after(5):
                await balancer.wait_buffered(1, pool="b")
            assert balancer.buffered_requests_snapshot("b").buffered_requests_current == 1
            assert balancer.buffered_requests_snapshot(DEFAULT_POOL).buffered_requests_current == 0
            late = FakeAgent(balancer, "late", 1, pool="b")
            tg.start_soon(late.run)
            await late.start()
            with anyio.fail_after(5):
                await served.wait()
            tg.cancel_scope.cancel()
        assert isinstance(result[-1].response, Done) and result[-1].generated_by == "late"
        assert late.states[-1].desired_state.model == MODEL_B.model


async def test_buffer_limit_applies_per_pool() -> None:
    config = BalancerConfig(max_buffered_requests=1, buffered_request_timeout=5.0)
    async with cluster(config=config) as (balancer, _):
        await balancer.set_desired_state(MODEL_B, "b")
        async with anyio.create_task_group() as tg:
            for pool in (DEFAULT_POOL, "b"):
                tg.start_soon(functools.partial(collect, balancer, pool=pool))
                with anyio.fail_after(5):
                    await balancer.wait_buffered(1, pool=pool)
            # Each pool holds one: the next one of either pool is refused, not the other's.
            (refused,) = await collect(balancer, pool="b")
            assert isinstance(refused, ErrorEnvelope) and refused.error.code == 503
            assert balancer.buffered_requests_snapshot().buffered_requests_current == 2
            tg.cancel_scope.cancel()


async def test_each_pool_has_its_own_desired_state() -> None:
    async with cluster(("a", 1, DEFAULT_POOL), ("b", 1, "b")) as (balancer, (a, b)):
        await balancer.set_desired_state(MODEL_B, "b")
        await b.wait_until(lambda: b.states and b.states[-1].desired_state.model == MODEL_B.model)
        assert all(s.desired_state.model == NoModel() for s in a.states)
        assert await balancer.get_desired_state("b") == MODEL_B
        assert await balancer.get_desired_state() == BalancerDesiredState.default()
        assert balancer.applicable_state_of("b") is not None
        assert balancer.applicable_state_of("absent") is None
        with pytest.raises(InvalidRequest, match="pool name"):
            await balancer.set_desired_state(MODEL_B, "no spaces")
        assert "no spaces" not in balancer.pool_names()


async def test_snapshots_statistics_and_agents_per_pool() -> None:
    agents = (("a", 2, DEFAULT_POOL), ("z", 1, "zeta"), ("m", 3, "mu"))
    async with cluster(*agents) as (balancer, _):
        assert balancer.pool_names() == (DEFAULT_POOL, "mu", "zeta")
        assert [p.name for p in balancer.pools_snapshot()] == list(balancer.pool_names())
        mu = balancer.pools_snapshot()[1]
        assert mu == PoolSnapshot(
            name="mu",
            agents=1,
            slots_total=3,
            slots_busy=0,
            requests_buffered=0,
            desired_model=NoModel(),
            serving=True,
            generation_enabled=True,
        )
        assert [x.id for x in balancer.agents_snapshot("zeta").agents] == ["z"]
        assert len(balancer.agents_snapshot().agents) == 3
        assert balancer.statistics().slots_total == 6
        assert balancer.statistics("mu").slots_total == 3
        assert balancer.pool_of_agent("z") == "zeta" and balancer.pool_of_agent("x") is None
        with pytest.raises(UnknownPool):
            balancer.agents_snapshot("nope")


async def test_subscriptions_follow_one_pool() -> None:
    async with cluster(("a", 1, DEFAULT_POOL)) as (balancer, _):
        pools = balancer.subscribe_pools()
        first = await pools.__anext__()
        assert [p.name for p in first] == [DEFAULT_POOL]
        joining = FakeAgent(balancer, "n", 2, pool="new")
        async with anyio.create_task_group() as tg:
            tg.start_soon(joining.run)
            await joining.start()
            with anyio.fail_after(5):
                async for snapshot in pools:
                    if len(snapshot) == 2 and snapshot[1].agents == 1:
                        break
            agents = balancer.subscribe_agents("new")
            assert [x.id for x in (await agents.__anext__()).agents] == ["n"]
            await joining.disconnect()
            with anyio.fail_after(5):
                async for snapshot in agents:
                    if not snapshot.agents:
                        break
            await agents.aclose()
            tg.cancel_scope.cancel()
        await pools.aclose()
        # The pool stays known after its last agent left.
        assert balancer.has_pool("new") and balancer.statistics("new").agents == 0


async def test_agent_ids_are_unique_across_pools() -> None:
    async with cluster(("a", 1, DEFAULT_POOL)) as (balancer, _):
        twin = FakeAgent(balancer, "a", 1, pool="other")
        await twin.start()
        with anyio.fail_after(5):
            await twin.run()  # returns once the balancer closes the twin's socket
        assert balancer.statistics("other").agents == 0
        assert balancer.pool_of_agent("a") == DEFAULT_POOL


async def test_an_invalid_pool_name_is_refused_when_an_agent_joins() -> None:
    async with cluster() as (balancer, _):
        fake = FakeAgent(balancer, "x", 1, pool="bad/name")
        with pytest.raises(InvalidRequest, match="bad/name"):
            await fake.start()


def adopted(balancer: Balancer, pool: str) -> bool:
    state = balancer.applicable_state_of(pool)
    return state is not None and state.model == LocalToAgentModel(path="/m/b.gguf")


async def test_each_pool_adopts_the_model_its_agents_serve() -> None:
    async with cluster() as (balancer, _):
        serving = FakeAgent(balancer, "s", 1, pool="b", model_path="/m/b.gguf")
        async with anyio.create_task_group() as tg:
            tg.start_soon(serving.run)
            await serving.start()
            with anyio.fail_after(5):
                await balancer.wait_statistics(lambda _: adopted(balancer, "b"))
            tg.cancel_scope.cancel()
        assert (await balancer.get_desired_state()).model == NoModel()


async def test_memory_store_keeps_every_pool() -> None:
    store = MemoryStateStore()
    await store.store(MODEL_B, "b")
    assert await store.stored_pools() == (DEFAULT_POOL, "b")
    assert await store.load("b") == MODEL_B
    assert await store.load() == BalancerDesiredState.default()
    async with cluster(state_store=store) as (balancer, _):
        assert balancer.pool_names() == (DEFAULT_POOL, "b")
        assert await balancer.get_desired_state("b") == MODEL_B


async def test_file_store_brings_pools_back_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    async with cluster(state_store=FileStateStore(path)) as (balancer, _):
        await balancer.set_desired_state(MODEL_B, "b")
    async with cluster(state_store=FileStateStore(path)) as (balancer, _):
        assert balancer.pool_names() == (DEFAULT_POOL, "b")
        assert await balancer.get_desired_state("b") == MODEL_B
        assert balancer.statistics("b").agents == 0


async def test_file_store_without_other_pools_is_written_as_before(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = FileStateStore(path)
    await store.store(MODEL_B)
    assert sorted(json.loads(path.read_text())) == [
        "balancer_desired_state",
        "version",
    ]
    await store.store(MODEL_B, "b")
    assert await FileStateStore(path).stored_pools() == (DEFAULT_POOL, "b")


class OneStateStore(StateStore):
    """A third-party store written before pools: one state, no ``pool`` parameter."""

    def __init__(self) -> None:
        self.state = BalancerDesiredState.default()

    async def load(self) -> BalancerDesiredState:  # type: ignore[override]
        return self.state

    async def store(self, state: BalancerDesiredState) -> None:  # type: ignore[override]
        self.state = state


async def test_a_store_written_before_pools_keeps_the_default_pool() -> None:
    store = OneStateStore()
    async with cluster(state_store=store) as (balancer, _):
        await balancer.set_desired_state(MODEL_B)
        await balancer.set_desired_state(MODEL_B, "b")  # kept in memory for this run
        assert store.state == MODEL_B
        assert await balancer.get_desired_state("b") == MODEL_B


async def test_metrics_label_requests_and_tokens_with_their_pool() -> None:
    metrics = BalancerMetrics()
    agents = (("a", 1, DEFAULT_POOL), ("b", 1, "b"))
    async with cluster(*agents, metrics=metrics) as (balancer, _):
        await collect(balancer, pool="b")
        await collect(balancer, pool="b")
        await collect(balancer)
        text = metrics.render(
            balancer.statistics(), balancer.agents_snapshot(), balancer.pools_snapshot()
        ).decode()
    assert 'paddler_pool_requests_total{outcome="ok",pool="b"} 2.0' in text
    assert 'paddler_pool_requests_total{outcome="ok",pool="default"} 1.0' in text
    assert 'paddler_requests_total{outcome="ok"} 3.0' in text
    assert 'paddler_pool_generated_tokens_total{pool="b"} 4.0' in text
    assert 'paddler_pool_slots_total{pool="b"} 1' in text
    assert 'paddler_pool_time_to_first_token_seconds_count{pool="b"} 2.0' in text
