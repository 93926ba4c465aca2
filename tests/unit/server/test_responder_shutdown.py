"""On shutdown every open OpenAI response ends with a terminal message, never a bare cut."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from paddler_server.openai._respond import ProducerResponse, Responder

pytestmark = pytest.mark.anyio


class Peer:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def send(self, message: Any) -> None:
        self.sent.append(message)

    async def receive(self) -> Any:
        await anyio.sleep_forever()

    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


async def run_until_shutdown(producer: Any) -> Peer:
    peer = Peer()
    shutdown = anyio.Event()
    response = ProducerResponse(producer, shutdown=shutdown)
    async with anyio.create_task_group() as tg:
        tg.start_soon(response, {"type": "http"}, peer.receive, peer.send)
        await anyio.sleep(0.1)
        shutdown.set()
    return peer


async def test_a_stream_ends_with_an_error_event_and_done() -> None:
    async def produce(responder: Responder) -> None:
        await responder.start_sse()
        await responder.send(b'data: {"choices": []}\n\n')
        await anyio.sleep_forever()  # a generation that would go on

    peer = await run_until_shutdown(produce)
    events = peer.body().decode().strip().split("\n\n")
    assert events[-1] == "data: [DONE]"
    error = json.loads(events[-2].removeprefix("data: "))
    assert "shutting down" in error["error"]["message"]
    assert peer.sent[-1]["more_body"] is False


async def test_a_request_not_yet_answered_gets_a_503() -> None:
    async def produce(responder: Responder) -> None:
        await anyio.sleep_forever()  # waiting in the buffer for a slot

    peer = await run_until_shutdown(produce)
    start = next(m for m in peer.sent if m["type"] == "http.response.start")
    assert start["status"] == 503
    assert "shutting down" in json.loads(peer.body())["error"]["message"]
