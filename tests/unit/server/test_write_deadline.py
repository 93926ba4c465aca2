"""Writes to a client have a deadline: a stalled reader is cut off and its producer unwound.

The ASGI ``send`` here is a stand-in for a socket whose peer stopped reading (it never
returns once the first chunks are out); the end-to-end version is tests/e2e/test_slow_clients.py.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from paddler_server._streaming import Emit, ProducerStream
from paddler_server.openai._respond import ProducerResponse, Responder

pytestmark = pytest.mark.anyio


class StallingPeer:
    """Accepts ``accepted`` messages, then blocks every send; never disconnects."""

    def __init__(self, accepted: int) -> None:
        self.accepted = accepted
        self.sent: list[Any] = []

    async def send(self, message: Any) -> None:
        if len(self.sent) >= self.accepted:
            await anyio.sleep_forever()
        self.sent.append(message)

    async def receive(self) -> Any:
        await anyio.sleep_forever()


async def test_a_stalled_ndjson_reader_is_cut_off_and_the_producer_unwinds() -> None:
    peer = StallingPeer(accepted=3)
    unwound = anyio.Event()
    cuts: list[bool] = []

    async def produce(emit: Emit) -> None:
        try:
            for i in range(1000):
                await emit(f"line {i}\n".encode())
        finally:
            unwound.set()  # where a balancer.generate() context would stop the request

    stream = ProducerStream(
        produce,
        media_type="application/json",
        write_timeout=0.2,
        on_cut=lambda: cuts.append(True),
    )
    with anyio.fail_after(5):
        await stream.send_body(peer.send, peer.receive)
    assert unwound.is_set()
    assert cuts == [True]
    assert len(peer.sent) == 3


async def test_a_reader_that_keeps_up_is_never_cut_off() -> None:
    peer = StallingPeer(accepted=10_000)
    cuts: list[bool] = []

    async def produce(emit: Emit) -> None:
        for i in range(20):
            await emit(f"line {i}\n".encode())
            await anyio.sleep(0.02)  # 0.4 s in all: longer than the deadline, each write quick

    stream = ProducerStream(
        produce, media_type="application/json", write_timeout=0.1, on_cut=lambda: cuts.append(True)
    )
    await stream.send_body(peer.send, peer.receive)
    assert cuts == []
    assert peer.sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


async def test_a_stalled_openai_stream_is_cut_off_and_the_producer_unwinds() -> None:
    peer = StallingPeer(accepted=2)
    unwound = anyio.Event()
    cuts: list[bool] = []

    async def produce(responder: Responder) -> None:
        try:
            await responder.start_sse()
            for i in range(1000):
                await responder.send(f"data: {i}\n\n".encode())
        finally:
            unwound.set()

    response = ProducerResponse(produce, write_timeout=0.2, on_cut=lambda: cuts.append(True))
    with anyio.fail_after(5):
        await response({"type": "http"}, peer.receive, peer.send)
    assert unwound.is_set()
    assert cuts == [True]
