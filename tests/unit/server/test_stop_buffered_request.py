"""``StopRespondingTo`` for a request still in the buffer, over a real inference socket.

Our choice (docs/compatibility.md): the request ends with one terminal ``Done`` with zero
usage and ``generated_by: null``; Paddler 4.1 sends nothing. Every request then ends with
exactly one terminal whatever state it was in, as a dispatched one does (the agent answers a
stop with ``Done``), so a client that waits for the terminal after a stop never hangs, and a
client that stops reading after a stop (Paddler's Rust client) just ignores one more line.
No agent is needed: with none connected the request waits in the buffer.
"""

from __future__ import annotations

import json

import anyio
import pytest
from websockets.asyncio.client import connect

from paddler.balancer import Balancer, BalancerConfig
from paddler_server.inference import create_inference_app
from paddler_server.serve import serve_apps

pytestmark = pytest.mark.anyio

ZERO_USAGE = {
    "prompt_tokens": 0,
    "cached_prompt_tokens": 0,
    "input_image_tokens": 0,
    "input_audio_tokens": 0,
    "content_tokens": 0,
    "reasoning_tokens": 0,
    "tool_call_tokens": 0,
    "undeterminable_tokens": 0,
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_stopped_buffered_request_ends_with_one_zero_usage_done() -> None:
    config = BalancerConfig(buffered_request_timeout=60.0)
    async with Balancer(config) as balancer, anyio.create_task_group() as tg:
        [(host, port)] = await tg.start(
            serve_apps, [(create_inference_app(balancer), "127.0.0.1", 0)]
        )
        url = f"ws://{host}:{port}/api/v1/inference_socket"
        request = {"raw_prompt": "Hi", "max_tokens": 4, "grammar": None}
        async with connect(url) as socket:
            await socket.send(
                json.dumps({"Request": {"id": "r1", "request": {"ContinueFromRawPrompt": request}}})
            )
            with anyio.fail_after(10):
                async for snapshot in balancer.subscribe_buffered_requests():
                    if snapshot.buffered_requests_current == 1:
                        break
                await socket.send(json.dumps({"Notification": {"StopRespondingTo": "r1"}}))
                answer = json.loads(await socket.recv())
                async for snapshot in balancer.subscribe_buffered_requests():
                    if snapshot.buffered_requests_current == 0:
                        break
            with anyio.move_on_after(0.5):  # nothing else follows for r1
                extra = await socket.recv()
                pytest.fail(f"a second message after the terminal: {extra}")
        tg.cancel_scope.cancel()

    assert answer == {
        "Response": {
            "generated_by": None,
            "request_id": "r1",
            "response": {"GeneratedToken": {"Done": {"usage": ZERO_USAGE}}},
        }
    }
    assert balancer.statistics().requests_cancelled == 1
