"""An NDJSON answer, and an OpenAI stream, write what arrived together in one chunk.

An agent sends a delivery of several tokens at once (the engine worker holds later tokens
for up to 50 ms); one body message per delivery instead of one per token saves the balancer
a socket write and the client a wake for each token.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from anyio import wait_all_tasks_blocked
from test_balancer import PROMPT, cluster

from paddler_server.inference import ndjson_stream
from paddler_server.openai._chat import answer_chat
from paddler_server.openai._chat_request import read_chat_request
from paddler_server.openai._respond import Responder

pytestmark = pytest.mark.anyio

TOKENS = ("a", "b", "c", "d", "e")


async def never_disconnects() -> Any:
    await anyio.sleep_forever()


async def test_tokens_that_arrived_while_a_write_waited_leave_in_one_write() -> None:
    writes: list[bytes] = []

    async def send(message: Any) -> None:
        if message["body"]:
            writes.append(message["body"])
        if len(writes) == 1:  # a slow first write: the agent's other tokens arrive meanwhile
            await wait_all_tasks_blocked()

    async with cluster(("a1", 1), tokens=TOKENS) as (balancer, _):
        response = ndjson_stream(balancer.generate(PROMPT), shutdown=None)
        with anyio.fail_after(5):
            await response.send_body(send, never_disconnects)
    lines = [json.loads(line) for chunk in writes for line in chunk.splitlines()]
    responses = [line["Response"]["response"] for line in lines]
    assert responses[:-1] == [{"GeneratedToken": {"ContentToken": t}} for t in TOKENS]
    assert "Done" in responses[-1]["GeneratedToken"]
    assert len(writes) == 2  # the first token alone, then the four others and Done together
    assert all(chunk.endswith(b"\n") for chunk in writes)


async def test_an_openai_stream_writes_tokens_that_arrived_together_in_one_chunk() -> None:
    writes: list[bytes] = []

    async def send(message: Any) -> None:
        if message["type"] != "http.response.body" or not message["body"]:
            return
        writes.append(message["body"])
        if len(writes) == 1:  # the role chunk waits: the agent's tokens all arrive meanwhile
            await wait_all_tasks_blocked()

    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with cluster(("a1", 1), tokens=TOKENS) as (balancer, _):
        with anyio.fail_after(5):
            await answer_chat(balancer, read_chat_request(body), "m", Responder(send))
    events = [line for chunk in writes for line in chunk.split(b"\n\n") if line]
    deltas = [json.loads(e[6:])["choices"][0]["delta"] for e in events if e != b"data: [DONE]"]
    assert "".join(d.get("content", "") for d in deltas) == "".join(TOKENS)
    assert events[-1] == b"data: [DONE]"
    # the role chunk, then every token with the finish chunk, then [DONE] (8 writes when
    # each token is written as it is read)
    assert len(writes) == 3
