"""Balancer behaviour against scripted agents over memory streams (no model, no sockets)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from balancer_fakes import FakeAgent, until_dispatched

from paddler.balancer import Balancer, BalancerConfig
from paddler.errors import GenerationDisabled, InvalidRequest, ShuttingDown
from paddler.plugins import get_plugin_manager
from paddler.wire import (
    L2,
    BalancerDesiredState,
    ContentToken,
    ContinueFromRawPromptParams,
    Done,
    EmbeddingDone,
    EmbeddingInputDocument,
    ErrorEnvelope,
    GenerateEmbeddingBatchParams,
    InferenceParameters,
    NoModel,
    ResponseEnvelope,
    SamplerError,
    SamplingOverrides,
)

pytestmark = pytest.mark.anyio

PROMPT = ContinueFromRawPromptParams(raw_prompt="hi", max_tokens=8)


@contextlib.asynccontextmanager
async def cluster(
    *agents: tuple[str, int], config: BalancerConfig | None = None, **agent_kwargs: Any
) -> AsyncIterator[tuple[Balancer, list[FakeAgent]]]:
    async with Balancer(
        config or BalancerConfig(buffered_request_timeout=2.0),
        plugin_manager=get_plugin_manager(entry_points=False),
    ) as balancer:
        fakes = [FakeAgent(balancer, agent_id, slots, **agent_kwargs) for agent_id, slots in agents]
        async with anyio.create_task_group() as tg:
            for fake in fakes:
                tg.start_soon(fake.run)
                await fake.start()
            with anyio.fail_after(5):
                await balancer.wait_agents(len([a for a in agents if a[1] > 0]))
            yield balancer, fakes
            tg.cancel_scope.cancel()


async def collect(balancer: Balancer, **kwargs: Any) -> list[Any]:
    async with balancer.generate(PROMPT, **kwargs) as stream:
        return [item async for item in stream]


async def test_generate_streams_tokens_then_done_with_agent_name() -> None:
    async with cluster(("a1", 1)) as (balancer, _):
        items = await collect(balancer, client_request_id="mine")
    assert [type(i.response) for i in items] == [ContentToken, ContentToken, Done]
    assert {i.request_id for i in items} == {"mine"}
    assert {i.generated_by for i in items} == {"a1"}


async def test_agent_side_ids_are_unique_even_for_equal_client_ids() -> None:
    async with cluster(("a1", 2)) as (balancer, (agent,)):
        await collect(balancer, client_request_id="same")
        await collect(balancer, client_request_id="same")
    assert len({r.id for r in agent.requests}) == 2


async def test_slot_is_free_again_after_terminal() -> None:
    async with cluster(("a1", 1)) as (balancer, _):
        await collect(balancer)
        assert balancer.statistics().slots_busy == 0
        assert balancer.agents_snapshot().agents[0].slots_processing == 0


async def test_burst_on_four_one_slot_agents_lands_on_four_agents() -> None:
    agents = [(f"a{i}", 1) for i in range(4)]
    async with cluster(*agents, hold=True) as (balancer, fakes):
        streams = [balancer.generate(PROMPT) for _ in range(4)]
        results: list[list[Any]] = [[] for _ in streams]

        async def run(index: int) -> None:
            async with streams[index] as stream:
                results[index] = [item async for item in stream]

        async with anyio.create_task_group() as tg:
            for index in range(4):
                tg.start_soon(run, index)
            with anyio.fail_after(5):
                await balancer.wait_slots_busy(4)
            for fake in fakes:
                fake.release()
    assert all(len(f.requests) == 1 for f in fakes)
    assert {items[-1].generated_by for items in results} == {"a0", "a1", "a2", "a3"}


async def test_overflow_with_buffering_disabled_is_a_503_envelope() -> None:
    config = BalancerConfig(max_buffered_requests=0)
    async with cluster(config=config) as (balancer, _):
        (item,) = await collect(balancer, client_request_id="x")
    assert isinstance(item, ErrorEnvelope)
    assert (item.request_id, item.error.code) == ("x", 503)


async def test_buffer_timeout_is_a_504_envelope_and_leaves_the_buffer() -> None:
    config = BalancerConfig(buffered_request_timeout=0.05)
    async with cluster(config=config) as (balancer, _):
        (item,) = await collect(balancer)
        assert len(balancer.buffer) == 0
    assert isinstance(item, ErrorEnvelope) and item.error.code == 504


async def test_scale_from_zero_request_served_when_first_agent_joins() -> None:
    async with cluster() as (balancer, _):
        result: list[Any] = []
        served = anyio.Event()

        async def request() -> None:
            result.extend(await collect(balancer))
            served.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(request)
            with anyio.fail_after(2):
                async for snapshot in balancer.subscribe_buffered_requests():
                    if snapshot.buffered_requests_current == 1:
                        break
            agent = FakeAgent(balancer, "late", 1)
            tg.start_soon(agent.run)
            await agent.start()
            with anyio.fail_after(5):
                await served.wait()
            tg.cancel_scope.cancel()
    assert isinstance(result[-1].response, Done)
    assert result[-1].generated_by == "late"


async def test_buffer_is_first_come_first_served() -> None:
    async with cluster(("a1", 0)) as (balancer, (agent,)):
        order: list[str] = []

        async def request(name: str) -> None:
            items = await collect(balancer, client_request_id=name)
            order.append(items[-1].request_id)

        async with anyio.create_task_group() as tg:
            for index in range(5):
                tg.start_soon(request, f"r{index}")
                with anyio.fail_after(5):
                    await balancer.wait_buffered(index + 1)
            await agent.set_slots(1)
    assert order == ["r0", "r1", "r2", "r3", "r4"]


async def test_consumer_leaving_stops_the_request_and_frees_slot_after_agent_confirms() -> None:
    async with cluster(("a1", 1), tokens=tuple("abcdefgh")) as (balancer, (agent,)):
        agent.hold = False
        async with balancer.generate(PROMPT) as stream:
            first = await stream.__anext__()
            assert isinstance(first, ResponseEnvelope)
        with anyio.fail_after(5):
            await balancer.wait_idle()
        assert agent.stops == [agent.requests[0].id]


async def test_slot_stays_busy_until_terminal_after_consumer_left() -> None:
    config = BalancerConfig(inference_item_timeout=0.2)
    async with cluster(("a1", 1), config=config, hold=True, ignore_stop=True) as (
        balancer,
        (agent,),
    ):
        async with balancer.generate(PROMPT) as stream:
            await until_dispatched(balancer, stream)
        assert balancer.statistics().slots_busy == 1
        await agent.wait_until(lambda: agent.stops)
        # the agent never confirms: one more item timeout, then the slot is free
        with anyio.fail_after(5):
            await balancer.wait_idle()


async def test_cancel_ends_with_done_carrying_usage() -> None:
    async with cluster(("a1", 1), hold=True) as (balancer, (agent,)):
        async with balancer.generate(PROMPT) as stream, anyio.create_task_group() as tg:
            items: list[Any] = []

            async def read() -> None:
                items.extend([i async for i in stream])

            tg.start_soon(read)
            await agent.wait_until(lambda: agent.requests)
            await stream.cancel()
        assert isinstance(items[-1].response, Done)
        assert balancer.statistics().slots_busy == 0


async def test_cancel_while_buffered_ends_quietly_with_done() -> None:
    async with cluster() as (balancer, _):
        async with balancer.generate(PROMPT) as stream, anyio.create_task_group() as tg:
            items: list[Any] = []

            async def read() -> None:
                items.extend([i async for i in stream])

            tg.start_soon(read)
            with anyio.fail_after(5):
                await balancer.wait_buffered(1)
            await stream.cancel()
        assert isinstance(items[-1].response, Done)
        assert len(balancer.buffer) == 0


async def test_agent_gone_mid_stream_is_a_502_envelope() -> None:
    async with cluster(("a1", 1), hold=True) as (balancer, (agent,)):
        items: list[Any] = []

        async def read() -> None:
            items.extend(await collect(balancer))

        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            await agent.wait_until(lambda: agent.requests)
            await agent.disconnect()
        assert items[-1].error.code == 502
        with anyio.fail_after(5):
            await balancer.wait_statistics(lambda s: s.agents == 0)


async def test_item_timeout_is_a_504_envelope_and_stops_the_agent() -> None:
    config = BalancerConfig(inference_item_timeout=0.05)
    async with cluster(("a1", 1), config=config, hold=True) as (balancer, (agent,)):
        items = await collect(balancer)
        assert items[-1].error.code == 504
        with anyio.fail_after(5):
            await balancer.wait_idle()
        assert agent.stops == [agent.requests[0].id]


async def test_draining_agent_is_acknowledged_and_gets_nothing_new() -> None:
    config = BalancerConfig(buffered_request_timeout=0.1)
    async with cluster(("a1", 1), config=config) as (balancer, (agent,)):
        versions_before = len(agent.versions)
        await agent.set_slots(0)
        with anyio.fail_after(2):
            while len(agent.versions) == versions_before:
                await agent.changed.wait()
        items = await collect(balancer)
        assert items[-1].error.code == 504
        assert agent.requests == []


async def test_stale_status_is_ignored() -> None:
    """A status older than the newest seen changes nothing."""
    async with cluster(("a1", 2)) as (balancer, (agent,)):
        await agent.set_slots(3)
        agent.version = 0
        await agent.set_slots(1)  # version 1 < 2: ignored
        # An answer from the agent comes after everything it sent before: the stale status
        # has been read by the time this returns.
        with anyio.fail_after(5):
            await balancer.get_chat_template_override("a1")
        assert balancer.statistics().slots_total == 3


async def test_desired_state_is_validated_naming_the_field() -> None:
    async with cluster() as (balancer, _):
        bad = BalancerDesiredState(inference_parameters=InferenceParameters(embedding_batch_size=0))
        with pytest.raises(InvalidRequest, match="embedding_batch_size"):
            await balancer.set_desired_state(bad)
        assert await balancer.get_desired_state() == BalancerDesiredState.default()


async def test_desired_state_is_pushed_to_agents_and_new_agents() -> None:
    async with cluster(("a1", 1)) as (balancer, (agent,)):
        state = BalancerDesiredState(inference_parameters=InferenceParameters.deterministic())
        await balancer.set_desired_state(state)
        with anyio.fail_after(2):
            while len(agent.states) < 2:
                await agent.changed.wait()
        assert agent.states[-1].desired_state.inference_parameters.temperature == 0
        late = FakeAgent(balancer, "late", 1)
        async with anyio.create_task_group() as tg:
            tg.start_soon(late.run)
            await late.start()
            with anyio.fail_after(2):
                while not late.states:
                    await late.changed.wait()
            tg.cancel_scope.cancel()
        assert late.states[-1].desired_state == balancer.applicable_state


async def test_embeddings_mode_disables_generation() -> None:
    async with cluster(("a1", 1)) as (balancer, _):
        modes = balancer.subscribe_generation_enabled()
        assert await modes.__anext__() is True
        params = InferenceParameters(enable_embeddings=True)
        await balancer.set_desired_state(BalancerDesiredState(inference_parameters=params))
        with anyio.fail_after(2):
            assert await modes.__anext__() is False
        with pytest.raises(GenerationDisabled):
            async with balancer.generate(PROMPT):
                pass
        await modes.aclose()


async def test_embedding_batch_is_split_across_agents_and_merged() -> None:
    async with cluster(("a1", 2), ("a2", 2)) as (balancer, fakes):
        params = InferenceParameters(enable_embeddings=True)
        await balancer.set_desired_state(BalancerDesiredState(inference_parameters=params))
        docs = tuple(EmbeddingInputDocument(id=f"d{i}", content="x") for i in range(5))
        batch = GenerateEmbeddingBatchParams(input_batch=docs, normalization_method=L2())
        async with balancer.embed(batch) as stream:
            items = [i async for i in stream]
    ids = [i.response.source_document_id for i in items[:-1]]
    assert sorted(ids) == [d.id for d in docs]
    assert isinstance(items[-1].response, EmbeddingDone)
    assert all(len(f.requests) == 1 for f in fakes)


async def test_rpc_answers_and_errors() -> None:
    from paddler.errors import AgentRpcTimeout, UnknownAgent

    config = BalancerConfig(agent_rpc_timeout=0.05)
    async with cluster(("a1", 1), config=config) as (balancer, (agent,)):
        template = await balancer.get_chat_template_override("a1")
        assert template is not None and template.content == "T"
        with pytest.raises(UnknownAgent):
            await balancer.get_chat_template_override("nobody")
        agent.hold = True
        with pytest.raises(AgentRpcTimeout):
            await balancer.get_chat_template_override("a1")


async def test_agents_that_register_while_their_model_is_being_adopted_keep_it() -> None:
    """A restarted balancer with nothing stored adopts the model its agents serve. The
    adoption takes a while (it asks an agent for its chat template); a second agent that
    registers meanwhile must not be sent the default state, which would unload its model."""
    model = "/models/m.gguf"
    async with Balancer(
        BalancerConfig(), plugin_manager=get_plugin_manager(entry_points=False)
    ) as balancer:
        first = FakeAgent(
            balancer, "a1", 1, model_path=model, uses_chat_template_override=True, hold=True
        )
        second = FakeAgent(balancer, "a2", 1, model_path=model)
        async with anyio.create_task_group() as tg:
            tg.start_soon(first.run)
            tg.start_soon(second.run)
            await first.start()
            await first.wait_until(lambda: first.requests)  # the adoption asks for the template
            await second.start()
            with anyio.fail_after(5):
                await balancer.wait_agents(2)
            assert first.states == [] and second.states == []
            first.release()
            with anyio.fail_after(5):
                while (await balancer.get_desired_state()).model == NoModel():
                    await balancer.wait_applicable_state_changed()
            assert first.states == [] and second.states == []  # both keep serving theirs
            tg.cancel_scope.cancel()


async def test_shutdown_answers_in_flight_requests_with_503() -> None:
    items: list[Any] = []
    async with anyio.create_task_group() as tg:
        async with Balancer(BalancerConfig()) as balancer:
            agent = FakeAgent(balancer, "a1", 1, hold=True)
            tg.start_soon(agent.run)
            await agent.start()
            await balancer.wait_agents(1)

            answered = anyio.Event()

            async def read() -> None:
                items.extend(await collect(balancer))
                answered.set()

            tg.start_soon(read)
            await agent.wait_until(lambda: agent.requests)
        with anyio.fail_after(5):
            await answered.wait()
        tg.cancel_scope.cancel()
    assert items[-1].error.code == 503
    assert "shutting down" in items[-1].error.description
    with pytest.raises(ShuttingDown):
        async with balancer.generate(PROMPT):
            pass


async def test_repr_and_statistics_show_live_counts() -> None:
    async with (
        cluster(("a1", 2), ("a2", 1), hold=True) as (balancer, fakes),
        balancer.generate(PROMPT) as stream,
    ):
        await until_dispatched(balancer, stream)
        assert repr(balancer) == (
            "<Balancer [requests: 1 active, 0 buffered | agents: 2, slots: 1/3 busy]>"
        )
        for fake in fakes:
            fake.release()


async def test_consumer_cancelled_while_buffered_leaves_quietly() -> None:
    async with cluster(("a1", 0)) as (balancer, (agent,)):
        async with anyio.create_task_group() as tg:
            tg.start_soon(collect, balancer)
            with anyio.fail_after(5):
                await balancer.wait_buffered(1)
            tg.cancel_scope.cancel()
        assert len(balancer.buffer) == 0
        await agent.set_slots(1)
        items = await collect(balancer)
        assert isinstance(items[-1].response, Done)
        assert len(agent.requests) == 1


async def test_policy_plugin_routes_by_header() -> None:
    from collections.abc import Sequence

    from paddler import hookimpl
    from paddler.policies import AgentCandidate, RequestInfo

    class ByHeader:
        @hookimpl
        def paddler_select_agent(
            self, request: RequestInfo, candidates: Sequence[AgentCandidate]
        ) -> AgentCandidate | None:
            wanted = request.headers.get("x-agent")
            return next((c for c in candidates if c.id == wanted), None)

    async with cluster(("a1", 4), ("a2", 4)) as (balancer, _):
        balancer.plugin_manager.register(ByHeader(), name="by-header")
        try:
            for _ in range(3):
                async with balancer.generate(PROMPT, headers={"x-agent": "a2"}) as stream:
                    items = [item async for item in stream]
                assert items[-1].generated_by == "a2"
        finally:
            balancer.plugin_manager.unregister(name="by-header")


async def test_dispatch_is_traced_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="paddler.balancer")
    async with cluster(("a1", 1)) as (balancer, _):
        await collect(balancer)
    assert "dispatch.started" in caplog.text and "dispatch.complete" in caplog.text


class RecordingMetrics:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def observe_buffer_wait(self, seconds: float) -> None:
        self.calls.append(("buffer_wait", seconds))

    def observe_time_to_first_token(self, seconds: float) -> None:
        self.calls.append(("ttft", seconds))

    def observe_inter_token_latency(self, seconds: float) -> None:
        self.calls.append(("itl", seconds))

    def count_tokens(self, *, prompt: int, cached_prompt: int, generated: int) -> None:
        self.calls.append(("tokens", (prompt, cached_prompt, generated)))

    def count_request(self, outcome: str) -> None:
        self.calls.append(("request", outcome))

    def record_generated_tokens(self, agent_id: str, count: int = 1) -> None:
        self.calls.append(("agent_tokens", (agent_id, count)))


async def test_metrics_see_wait_latencies_tokens_and_outcomes() -> None:
    metrics = RecordingMetrics()
    config = BalancerConfig(max_buffered_requests=0)
    async with Balancer(config, metrics=metrics) as balancer:
        agent = FakeAgent(balancer, "a1", 1)
        async with anyio.create_task_group() as tg:
            tg.start_soon(agent.run)
            await agent.start()
            await balancer.wait_agents(1)
            await collect(balancer)
            agent.hold = True
            async with balancer.generate(PROMPT) as held:
                await until_dispatched(balancer, held)
                await collect(balancer)  # no slot, no buffer: 503
                agent.release()
            tg.cancel_scope.cancel()
    kinds = [kind for kind, _ in metrics.calls]
    assert kinds.count("ttft") == 1 and kinds.count("itl") == 1
    # Tokens for tokens/s are handed over in batches: what counts is how many, not how often.
    agent_tokens = [value for kind, value in metrics.calls if kind == "agent_tokens"]
    assert sum(count for _, count in agent_tokens) == 2 and kinds.count("buffer_wait") == 2
    assert ("tokens", (3, 0, 2)) in metrics.calls
    outcomes = [value for kind, value in metrics.calls if kind == "request"]
    assert outcomes == ["ok", "503", "cancelled"]


async def test_sampling_overrides_travel_with_the_agent_request() -> None:
    overrides = SamplingOverrides(temperature=0.0, seed=9, stop=("\n",))
    async with cluster(("a1", 1)) as (balancer, (agent,)):
        await collect(balancer)
        await collect(balancer, overrides=overrides)
        await collect(balancer, overrides=SamplingOverrides())
    assert [r.sampling_overrides for r in agent.requests] == [
        None,
        overrides,
        None,  # nothing to override: the frame stays Paddler's
    ]


async def test_streamed_tokens_feed_the_agents_tokens_per_second_and_latency_histograms() -> None:
    """What the admin panel and /metrics read: per-agent tokens/s, TTFT and inter-token counts."""
    from prometheus_client.parser import text_string_to_metric_families

    from paddler.metrics import BalancerMetrics

    metrics = BalancerMetrics(prefix="t_")
    async with Balancer(BalancerConfig(), metrics=metrics) as balancer:
        agent = FakeAgent(balancer, "a1", 1, tokens=("a", "b", "c", "d"))
        async with anyio.create_task_group() as tg:
            tg.start_soon(agent.run)
            await agent.start()
            await balancer.wait_agents(1)
            await collect(balancer)
            await collect(balancer)
            text = metrics.render(balancer.statistics(), balancer.agents_snapshot()).decode()
            tg.cancel_scope.cancel()
    samples = {
        (sample.name, sample.labels.get("agent_id")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("t_agent_tokens_per_second", "a1")] > 0
    assert samples[("t_time_to_first_token_seconds_count", None)] == 2
    assert samples[("t_inter_token_latency_seconds_count", None)] == 6
    assert samples[("t_generated_tokens_total", None)] == 8


async def test_a_terminal_error_is_not_counted_as_a_token() -> None:
    metrics = RecordingMetrics()
    async with Balancer(BalancerConfig(), metrics=metrics) as balancer:
        agent = FakeAgent(balancer, "a1", 1, hold=True)
        async with anyio.create_task_group() as tg:
            tg.start_soon(agent.run)
            await agent.start()
            await balancer.wait_agents(1)
            async with balancer.generate(PROMPT) as stream:
                tg.start_soon(_fail_first_request, agent)
                items = [item async for item in stream]
            agent.release()
            tg.cancel_scope.cancel()
    assert isinstance(items[-1].response, SamplerError)
    kinds = {kind for kind, _ in metrics.calls}
    assert not kinds & {"ttft", "itl", "agent_tokens"}


async def _fail_first_request(agent: FakeAgent) -> None:
    await agent.wait_until(lambda: agent.requests)
    await agent.send(agent.requests[0].id, SamplerError("no slots"))


async def test_statistics_count_cancelled_requests_apart_from_failed_ones() -> None:
    """A cancel is neither a completion nor a failure; a refused request is a failure."""
    async with cluster(("a1", 1), hold=True) as (balancer, (agent,)):
        async with balancer.generate(PROMPT) as stream, anyio.create_task_group() as tg:
            tg.start_soon(collect_into, stream, [])
            await agent.wait_until(lambda: agent.requests)
            await stream.cancel()
        balancer.count_rejected(400)
        statistics = balancer.statistics()
        assert (statistics.requests_cancelled, statistics.requests_failed) == (1, 1)
        assert statistics.requests_completed == 0


async def collect_into(stream: Any, items: list[Any]) -> None:
    items.extend([item async for item in stream])


async def test_waiting_for_no_open_requests_wakes_when_the_last_block_closes() -> None:
    """requests_active counts open blocks; a wait on it wakes when the last one closes, even
    while the left request's slot is still held (its agent has not confirmed the stop)."""
    async with cluster(("a1", 1), hold=True, ignore_stop=True) as (balancer, (agent,)):
        closed = anyio.Event()

        async def wait_none_open() -> None:
            statistics = await balancer.wait_statistics(lambda s: s.requests_active == 0)
            assert statistics.requests_active == 0 and statistics.slots_busy == 1
            closed.set()

        async with anyio.create_task_group() as tg:
            async with balancer.generate(PROMPT) as stream:
                await until_dispatched(balancer, stream)
                tg.start_soon(wait_none_open)
                await anyio.wait_all_tasks_blocked()
                assert not closed.is_set()
            with anyio.fail_after(5):  # nothing else changes: the drain waits for the agent
                await closed.wait()
        agent.release()
        with anyio.fail_after(5):
            await balancer.wait_idle()
