"""Stream tokens with ``paddler.client`` and stop early: the slot is free again at once.

Leaving the ``async with`` block (or ``break``, or cancelling the task) sends
``StopRespondingTo`` over the inference WebSocket, so the agent stops generating instead of
running to ``max_tokens``. Run a cluster first (``paddler demo``), then
``python examples/client_streaming.py [INFERENCE_URL [MANAGEMENT_URL]]``.
"""

from __future__ import annotations

import os
import sys

import anyio

from paddler.client import InferenceClient, ManagementClient
from paddler.wire import ContentToken, ContinueFromConversationHistoryParams, ConversationMessage

INFERENCE_URL = os.environ.get("PADDLER_INFERENCE_URL", "http://127.0.0.1:8061")
MANAGEMENT_URL = os.environ.get("PADDLER_MANAGEMENT_URL", "http://127.0.0.1:8060")


async def busy_slots(management: ManagementClient) -> int:
    return sum(agent.slots_processing for agent in (await management.agents()).agents)


async def wait_free(management: ManagementClient) -> int:
    """Watch the agents stream until no slot is busy (the agent has confirmed the stop)."""
    with anyio.fail_after(5):
        async for snapshot in management.agents_stream():
            if sum(a.slots_processing for a in snapshot.agents) == 0:
                break
    return await busy_slots(management)


async def main(inference_url: str = INFERENCE_URL, management_url: str = MANAGEMENT_URL) -> None:
    params = ContinueFromConversationHistoryParams(
        add_generation_prompt=True,
        conversation_history=(
            ConversationMessage(role="user", content="Tell me a very long story about a fox."),
        ),
        enable_thinking=False,
        max_tokens=1000,
    )
    async with InferenceClient(inference_url) as client, ManagementClient(management_url) as mgmt:
        words = 0
        async with await client.continue_from_conversation_history(params) as stream:
            async for envelope in stream:
                if isinstance(envelope.response, ContentToken):
                    print(envelope.response.text, end="", flush=True)
                    words += 1
                if words == 20:
                    break  # leaving the block stops the request on its agent
        print(f"\n[stopped after {words} tokens]")
        await wait_free(mgmt)
        print(f"busy slots now: {await busy_slots(mgmt)}")

        # cancel() stops the request and waits for the agent's final usage.
        stream = await client.continue_from_conversation_history(params)
        async for envelope in stream:
            if isinstance(envelope.response, ContentToken):
                break
        usage = await stream.cancel()
        print(f"cancelled; usage so far: {usage}")

        # A reader whose task is cancelled (here by a timeout) stops its request too.
        with anyio.move_on_after(1.0):
            async for _ in await client.continue_from_conversation_history(params):
                pass
        print(f"timed out; busy slots once the agent confirms: {await wait_free(mgmt)}")


if __name__ == "__main__":
    urls = (sys.argv[1:] + [INFERENCE_URL, MANAGEMENT_URL][len(sys.argv[1:]) :])[:2]
    anyio.run(main, urls[0], urls[1])
