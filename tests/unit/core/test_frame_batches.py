"""``frame_batches``: an agent's queued messages leave in one text frame, and a balancer reads
them back in order; without the extension (a Paddler balancer) each message is its own frame."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from test_token_frames import USAGE

from paddler.transports import TextFrameStream
from paddler.transports._frames import BATCH_BYTES
from paddler.wire import (
    AgentResponse,
    AgentSocketExtension,
    AgentToBalancerMessage,
    BalancerToAgentMessage,
    ContentToken,
    Done,
    converter,
)

pytestmark = pytest.mark.anyio

MESSAGES = [
    AgentResponse(generated_by="a1", request_id="r1", response=ContentToken("Hel")),
    AgentResponse(generated_by="a1", request_id="r2", response=ContentToken("lo")),
    AgentResponse(generated_by="a1", request_id="r1", response=Done(usage=USAGE)),
]


async def ignore(*_: Any) -> None:
    return None


def agent_end(sent: list[str], extensions: frozenset[str]) -> TextFrameStream:
    async def send_text(text: str) -> None:
        sent.append(text)

    return TextFrameStream(
        send_text=send_text,
        receive_text=ignore,
        close=ignore,
        receive_type=BalancerToAgentMessage,
        send_type=AgentToBalancerMessage,
        extensions=extensions,
    )


def balancer_end(frames: list[str]) -> TextFrameStream:
    pending = iter([*frames, None])

    async def receive_text() -> str | None:
        return next(pending)

    return TextFrameStream(
        send_text=ignore,
        receive_text=receive_text,
        close=ignore,
        receive_type=AgentToBalancerMessage,
        send_type=BalancerToAgentMessage,
    )


async def read_all(stream: TextFrameStream) -> list[Any]:
    return [item async for item in stream]


async def test_queued_messages_leave_in_one_frame_and_read_back_in_order() -> None:
    sent: list[str] = []
    await agent_end(sent, frozenset({AgentSocketExtension.FRAME_BATCHES})).send_many(MESSAGES)
    assert len(sent) == 1
    assert json.loads(sent[0]) == [
        json.loads(converter.dumps(m, AgentToBalancerMessage)) for m in MESSAGES
    ]
    assert await read_all(balancer_end(sent)) == MESSAGES


async def test_without_the_extension_each_message_is_paddlers_own_frame() -> None:
    sent: list[str] = []
    await agent_end(sent, frozenset()).send_many(MESSAGES)
    assert sent == [converter.dumps(m, AgentToBalancerMessage) for m in MESSAGES]


async def test_a_bad_batch_frame_is_skipped_and_the_next_frames_are_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = converter.dumps(MESSAGES[0], AgentToBalancerMessage)
    frames = [
        "[" + good + ',{"Response":{"request_id":7}}]',  # the second element is not a message
        "[1, 2",  # not JSON
        "[" + converter.dumps(MESSAGES[2], AgentToBalancerMessage).replace("2", "NaN") + "]",
        "[" + good + "]",
    ]
    with caplog.at_level(logging.WARNING, logger="paddler.transports"):
        assert await read_all(balancer_end(frames)) == [MESSAGES[0]]
    problems = [r.getMessage() for r in caplog.records]
    assert len(problems) == 3
    assert "$[1]" in problems[0]  # names the element that was wrong
    assert "NaN" in problems[2]


async def test_a_batch_stays_below_the_frame_cap_and_a_big_message_goes_alone() -> None:
    big = AgentResponse(
        generated_by="a1", request_id="r1", response=ContentToken("x" * BATCH_BYTES)
    )
    small = [
        AgentResponse(generated_by="a1", request_id="r1", response=ContentToken("y" * 1000))
        for _ in range(600)
    ]
    items = [*small[:300], big, *small[300:]]
    sent: list[str] = []
    await agent_end(sent, frozenset({AgentSocketExtension.FRAME_BATCHES})).send_many(items)
    assert all(len(text) <= BATCH_BYTES or not text.startswith("[") for text in sent)
    assert converter.dumps(big, AgentToBalancerMessage) in sent  # alone, Paddler's shape
    assert len(sent) < len(items) // 50  # still batched
    assert await read_all(balancer_end(sent)) == items
