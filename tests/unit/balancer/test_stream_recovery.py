"""Retry before the first token and resume after it (``docs/failover.md``), against scripted
agents over memory streams: which agent gets the request again, with what continuation, what
the client sees, and what is counted."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from balancer_fakes import FakeAgent, usage

from paddler.balancer import Balancer, BalancerConfig
from paddler.balancer._recovery import http_request_header, opted_out
from paddler.errors import InvalidRequest
from paddler.metrics import BalancerMetrics
from paddler.plugins import get_plugin_manager
from paddler.wire import (
    AgentRequest,
    ContentToken,
    ContinueFromRawPromptParams,
    Done,
    ErrorEnvelope,
    GbnfGrammar,
    ReasoningToken,
    ResponseEnvelope,
    SamplerError,
)
from paddler_server._recovery_header import RecoveryOptOut

pytestmark = pytest.mark.anyio

PROMPT = ContinueFromRawPromptParams(raw_prompt="hi", max_tokens=8)


class StallingAgent(FakeAgent):
    """Sends its first ``sent`` items, then nothing: the test then disconnects it."""

    def __init__(self, *args: Any, sent: tuple[Any, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent = sent
        self.stalled = anyio.Event()

    async def _serve(self, message: AgentRequest) -> None:
        for item in self.sent:
            await self.send(message.id, item)
        self.stalled.set()
        await anyio.sleep_forever()


class RefusingAgent(FakeAgent):
    """Answers every generation at once with an agent-side refusal; stays connected."""

    async def _serve(self, message: AgentRequest) -> None:
        await self.send(message.id, SamplerError("There are no available sequence slots"))


class PaddlerAgent(FakeAgent):
    """An agent that announced no extension (Paddler 4.1): never a resume target."""

    async def start(self) -> None:
        self.balancer.accept_agent(self.agent_id, self.balancer_side, extensions=())
        await self.send_stream.send(self.registration())


@contextlib.asynccontextmanager
async def cluster(
    *agents: FakeAgent | Any, config: BalancerConfig | None = None
) -> AsyncIterator[tuple[Balancer, BalancerMetrics]]:
    """Start ``agents`` (made by ``lambda balancer: FakeAgent(...)``) in registration order."""
    metrics = BalancerMetrics()
    async with Balancer(
        config or BalancerConfig(buffered_request_timeout=2.0),
        plugin_manager=get_plugin_manager(entry_points=False),
        metrics=metrics,
    ) as balancer:
        fakes = [make(balancer) for make in agents]
        async with anyio.create_task_group() as tg:
            for number, fake in enumerate(fakes, 1):
                tg.start_soon(fake.run)
                await fake.start()
                with anyio.fail_after(5):  # in order: least busy ties go to the first
                    await balancer.wait_agents(number)
            balancer.fakes = fakes  # type: ignore[attr-defined]
            yield balancer, metrics
            tg.cancel_scope.cancel()


def fakes(balancer: Balancer) -> list[Any]:
    return balancer.fakes  # type: ignore[attr-defined,no-any-return]


async def read_while(
    balancer: Balancer, victim: StallingAgent, params: Any = PROMPT, **kwargs: Any
) -> list[Any]:
    """Stream one request; once ``victim`` has sent what it sends, disconnect it."""
    items: list[Any] = []

    async def read() -> None:
        async with balancer.generate(params, **kwargs) as stream:
            items.extend([item async for item in stream])

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        with anyio.fail_after(5):
            await victim.stalled.wait()
        await victim.disconnect()
    return items


def contents(items: list[Any]) -> list[str]:
    return [
        item.response.text
        for item in items
        if isinstance(item, ResponseEnvelope) and isinstance(item.response, ContentToken)
    ]


def counted(metrics: BalancerMetrics) -> dict[str, float]:
    text = metrics.render(_Stats()).decode()
    values = {}
    for kind in ("retried", "resumed", "failed_after_retry"):
        line = next(x for x in text.splitlines() if x.startswith(f"paddler_requests_{kind}_total"))
        values[kind] = float(line.split()[-1])
    return values


class _Stats:
    slots_total = slots_busy = requests_buffered = 0


async def test_agent_lost_before_first_token_is_retried_elsewhere_once() -> None:
    async with cluster(lambda b: StallingAgent(b, "a1", 1), lambda b: FakeAgent(b, "a2", 1)) as (
        balancer,
        metrics,
    ):
        victim, other = fakes(balancer)
        items = await read_while(balancer, victim)
        assert contents(items) == ["Hel", "lo"]
        assert isinstance(items[-1].response, Done)
        assert {item.generated_by for item in items} == {"a2"}
        assert [r.continuation for r in other.requests] == [None]
        assert counted(metrics) == {"retried": 1, "resumed": 0, "failed_after_retry": 0}


async def test_agent_lost_after_tokens_resumes_with_the_streamed_text() -> None:
    async with cluster(
        lambda b: StallingAgent(b, "a1", 1, sent=(ContentToken("He"), ContentToken("l"))),
        lambda b: FakeAgent(b, "a2", 1, tokens=("lo", "!")),
    ) as (balancer, metrics):
        victim, other = fakes(balancer)
        items = await read_while(balancer, victim)
        assert contents(items) == ["He", "l", "lo", "!"]  # one stream, nothing twice
        assert [r.continuation for r in other.requests] == ["Hel"]
        assert other.requests[0].request == PROMPT
        assert items[-1].response == Done(usage=usage(2))  # the new agent's usage: all of it
        assert counted(metrics) == {"retried": 0, "resumed": 1, "failed_after_retry": 0}


async def test_agent_refusal_before_first_token_goes_to_another_agent() -> None:
    """The refusing agent stays connected and least busy: it is excluded, not chosen again."""
    async with cluster(lambda b: RefusingAgent(b, "a1", 1), lambda b: FakeAgent(b, "a2", 1)) as (
        balancer,
        metrics,
    ):
        refusing, other = fakes(balancer)
        async with balancer.generate(PROMPT) as stream:
            items = [item async for item in stream]
        assert contents(items) == ["Hel", "lo"]
        assert len(refusing.requests) == 1 and len(other.requests) == 1
        assert counted(metrics)["retried"] == 1


async def test_refusal_with_no_other_agent_is_relayed_as_before() -> None:
    async with cluster(lambda b: RefusingAgent(b, "a1", 1)) as (balancer, metrics):
        async with balancer.generate(PROMPT) as stream:
            items = [item async for item in stream]
        assert items[-1].response == SamplerError("There are no available sequence slots")
        assert counted(metrics)["retried"] == 0


async def test_opt_out_header_keeps_the_502() -> None:
    async with cluster(
        lambda b: StallingAgent(b, "a1", 1, sent=(ContentToken("He"),)),
        lambda b: FakeAgent(b, "a2", 1),
    ) as (balancer, metrics):
        victim, other = fakes(balancer)
        items = await read_while(balancer, victim, headers={"paddler-stream-recovery": "off"})
        assert isinstance(items[-1], ErrorEnvelope) and items[-1].error.code == 502
        assert other.requests == []
        assert counted(metrics) == {"retried": 0, "resumed": 0, "failed_after_retry": 0}


async def test_stream_recovery_off_keeps_the_502_before_the_first_token_too() -> None:
    config = BalancerConfig(buffered_request_timeout=2.0, stream_recovery=False)
    async with cluster(
        lambda b: StallingAgent(b, "a1", 1), lambda b: FakeAgent(b, "a2", 1), config=config
    ) as (balancer, _):
        victim, other = fakes(balancer)
        items = await read_while(balancer, victim)
        assert items[-1].error.code == 502
        assert other.requests == []


async def test_grammar_answer_is_not_resumed_and_says_why() -> None:
    grammar = ContinueFromRawPromptParams(
        raw_prompt="hi", max_tokens=8, grammar=GbnfGrammar(grammar='root ::= "a"', root="root")
    )
    async with cluster(
        lambda b: StallingAgent(b, "a1", 1, sent=(ContentToken("a"),)),
        lambda b: FakeAgent(b, "a2", 1),
    ) as (balancer, _):
        victim, other = fakes(balancer)
        items = await read_while(balancer, victim, params=grammar)
        assert items[-1].error.code == 502
        assert "not resumed" in items[-1].error.description
        assert other.requests == []


async def test_reasoning_answer_is_not_resumed() -> None:
    async with cluster(
        lambda b: StallingAgent(b, "a1", 1, sent=(ReasoningToken("hm"),)),
        lambda b: FakeAgent(b, "a2", 1),
    ) as (balancer, _):
        victim, other = fakes(balancer)
        items = await read_while(balancer, victim)
        assert "reasoning" in items[-1].error.description
        assert other.requests == []


async def test_grammar_request_is_still_retried_before_its_first_token() -> None:
    grammar = ContinueFromRawPromptParams(
        raw_prompt="hi", max_tokens=8, grammar=GbnfGrammar(grammar='root ::= "a"', root="root")
    )
    async with cluster(lambda b: StallingAgent(b, "a1", 1), lambda b: FakeAgent(b, "a2", 1)) as (
        balancer,
        _,
    ):
        victim, _ = fakes(balancer)
        items = await read_while(balancer, victim, params=grammar)
        assert contents(items) == ["Hel", "lo"]


async def test_paddler_agent_is_no_resume_target() -> None:
    async with cluster(
        lambda b: StallingAgent(b, "a1", 1, sent=(ContentToken("He"),)),
        lambda b: PaddlerAgent(b, "rust", 1),
    ) as (balancer, _):
        victim, rust = fakes(balancer)
        items = await read_while(balancer, victim)
        assert items[-1].error.code == 502
        assert rust.requests == []


async def test_retries_are_bounded_and_the_last_failure_is_counted() -> None:
    """Three agents lost in a row: two re-dispatches, then the error (naming the tries)."""
    async with cluster(
        lambda b: StallingAgent(b, "a1", 1),
        lambda b: StallingAgent(b, "a2", 1),
        lambda b: StallingAgent(b, "a3", 1),
        lambda b: FakeAgent(b, "a4", 1),
    ) as (balancer, metrics):
        a1, a2, a3, a4 = fakes(balancer)
        items: list[Any] = []

        async def read() -> None:
            async with balancer.generate(PROMPT) as stream:
                items.extend([item async for item in stream])

        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            for victim in (a1, a2, a3):
                with anyio.fail_after(5):
                    await victim.stalled.wait()
                await victim.disconnect()
        assert items[-1].error.code == 502
        assert "dispatched 3 times" in items[-1].error.description
        assert a4.requests == []
        assert counted(metrics) == {"retried": 2, "resumed": 0, "failed_after_retry": 1}


async def test_opt_out_in_context_keeps_the_502() -> None:
    """How the OpenAI service applies the header: ``http_request_header`` around its
    handler."""
    async with cluster(
        lambda b: StallingAgent(b, "a1", 1, sent=(ContentToken("He"),)),
        lambda b: FakeAgent(b, "a2", 1),
    ) as (balancer, _):
        victim, other = fakes(balancer)
        with http_request_header("off"):
            items = await read_while(balancer, victim)
        assert items[-1].error.code == 502
        assert other.requests == []


@pytest.mark.parametrize(("value", "off"), [("off", True), (" OFF ", True), ("on", False)])
async def test_the_asgi_wrapper_reads_the_header(value: str, off: bool) -> None:
    seen: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(opted_out({}))

    scope = {"type": "http", "headers": [(b"paddler-stream-recovery", value.encode())]}
    await RecoveryOptOut(app)(scope, None, None)
    await RecoveryOptOut(app)({"type": "http", "headers": []}, None, None)
    assert seen == [off, False]


async def test_a_header_neither_off_nor_on_is_refused_naming_it() -> None:
    with pytest.raises(InvalidRequest, match="Paddler-Stream-Recovery header: 'maybe'"):
        opted_out({"paddler-stream-recovery": "maybe"})
    with (
        http_request_header("nope"),
        pytest.raises(InvalidRequest, match="Paddler-Stream-Recovery"),
    ):
        opted_out({})
