"""``paddler.client.InferenceClient`` against a real cluster: streams, cancellation, errors."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from e2e_cluster import Cluster

from paddler.client import (
    HTTPStatusError,
    InferenceClient,
    ManagementClient,
    ServerUnreachable,
    SyncInferenceClient,
)
from paddler.wire import (
    ContentToken,
    ContinueFromConversationHistoryParams,
    ContinueFromRawPromptParams,
    ConversationMessage,
    Done,
    Function,
    Tool,
    ValidatedParametersSchema,
)

pytestmark = [pytest.mark.e2e, pytest.mark.model]


def conversation(
    text: str = "Say hello to Anna.", max_tokens: int = 12, **extra: Any
) -> ContinueFromConversationHistoryParams:
    return ContinueFromConversationHistoryParams(
        add_generation_prompt=True,
        conversation_history=(ConversationMessage(role="user", content=text),),
        enable_thinking=False,
        max_tokens=max_tokens,
        **extra,
    )


LONG = conversation("Write a very long story about a fox and a crow.", max_tokens=1500)


async def wait_all_slots_free(cluster: Cluster, seconds: float) -> None:
    """Watch the agents stream until no slot is busy; fail if that takes over ``seconds``."""
    async with ManagementClient(cluster.management_url) as management:
        with anyio.fail_after(seconds):
            async for snapshot in management.agents_stream():
                if all(agent.slots_processing == 0 for agent in snapshot.agents):
                    return


async def wait_busy(cluster: Cluster) -> None:
    async with ManagementClient(cluster.management_url) as management:
        with anyio.fail_after(10):
            async for snapshot in management.agents_stream():
                if any(agent.slots_processing > 0 for agent in snapshot.agents):
                    return


@pytest.mark.anyio
async def test_websocket_stream_ends_with_done_and_usage(cluster: Cluster) -> None:
    async with InferenceClient(cluster.inference_url) as client:
        assert await client.health() == "OK"
        stream = await client.continue_from_conversation_history(conversation())
        envelopes = [envelope async for envelope in stream]
        assert envelopes[-1].generated_by == "client-agent"
        assert isinstance(envelopes[-1].response, Done)
        assert any(isinstance(e.response, ContentToken) for e in envelopes)
        assert {e.request_id for e in envelopes} == {stream.request_id}
        assert stream.usage is not None and stream.usage.content_tokens > 0


@pytest.mark.anyio
async def test_raw_prompt_and_http_ndjson_give_the_same_text(cluster: Cluster) -> None:
    """The deterministic preset makes the WebSocket and NDJSON paths comparable."""
    raw = ContinueFromRawPromptParams(
        raw_prompt="<|im_start|>user\nCount to five.<|im_end|>\n<|im_start|>assistant\n",
        max_tokens=10,
    )
    async with InferenceClient(cluster.inference_url) as client:
        over_socket = await (await client.continue_from_raw_prompt(raw)).text()
        over_http = await (await client.post_continue_from_raw_prompt(raw)).text()
        assert over_socket and over_socket == over_http
        history = await (
            await client.post_continue_from_conversation_history(conversation())
        ).text()
        assert history


@pytest.mark.anyio
async def test_several_requests_share_one_socket(cluster: Cluster) -> None:
    async with InferenceClient(cluster.inference_url) as client:
        texts: list[str] = []

        async def one() -> None:
            texts.append(
                await (await client.continue_from_conversation_history(conversation())).text()
            )

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(one)
        assert len(texts) == 3 and all(texts)
        assert client.socket.connections_opened == 1


@pytest.mark.anyio
async def test_leaving_the_block_frees_the_slot_within_a_second(cluster: Cluster) -> None:
    async with InferenceClient(cluster.inference_url) as client:
        async with await client.continue_from_conversation_history(LONG) as stream:
            count = 0
            async for envelope in stream:
                count += isinstance(envelope.response, ContentToken)
                if count == 3:
                    break
        await wait_all_slots_free(cluster, 1.0)


@pytest.mark.anyio
async def test_break_and_drop_frees_the_slot(cluster: Cluster) -> None:
    """Plain ``async for ... break`` with no block: dropping the stream stops the request."""
    async with InferenceClient(cluster.inference_url) as client:
        async for envelope in await client.continue_from_conversation_history(LONG):
            if isinstance(envelope.response, ContentToken):
                break
        await wait_all_slots_free(cluster, 1.0)


@pytest.mark.anyio
async def test_cancelling_the_reading_task_frees_the_slot(cluster: Cluster) -> None:
    async with InferenceClient(cluster.inference_url) as client:
        stream = await client.continue_from_conversation_history(LONG)
        with anyio.move_on_after(0.5):
            async for _ in stream:
                pass
        await wait_all_slots_free(cluster, 1.0)


@pytest.mark.anyio
async def test_cancel_returns_the_usage_so_far(cluster: Cluster) -> None:
    async with InferenceClient(cluster.inference_url) as client:
        stream = await client.continue_from_conversation_history(LONG)
        async for envelope in stream:
            if isinstance(envelope.response, ContentToken):
                break
        usage = await stream.cancel()
        assert usage is not None and 0 < usage.content_tokens < 1500
        await wait_all_slots_free(cluster, 1.0)


@pytest.mark.anyio
async def test_abandoned_http_stream_frees_the_slot(cluster: Cluster) -> None:
    async with InferenceClient(cluster.inference_url) as client:
        async with await client.post_continue_from_conversation_history(LONG) as stream:
            async for envelope in stream:
                if isinstance(envelope.response, ContentToken):
                    break
        await wait_all_slots_free(cluster, 1.0)


@pytest.mark.anyio
async def test_a_dropped_socket_fails_open_requests_and_reconnects(cluster: Cluster) -> None:
    async with InferenceClient(cluster.inference_url) as client:
        stream = await client.continue_from_conversation_history(LONG)
        await anext(stream)
        ws = client.socket._ws
        assert ws is not None
        await ws.close()  # as if the network dropped it
        with pytest.raises(Exception) as info:
            async for _ in stream:
                pass
        assert type(info.value).__name__ == "ConnectionDropped"
        text = await (await client.continue_from_conversation_history(conversation())).text()
        assert text
        assert client.socket.connections_opened == 2
    await wait_all_slots_free(cluster, 5.0)


@pytest.mark.anyio
async def test_errors_are_typed(cluster: Cluster) -> None:
    bad_tool = Tool(
        Function(
            name="f",
            description="",
            parameters=ValidatedParametersSchema(
                properties={"a": {"type": "string"}}, required=("missing",)
            ),
        )
    )
    async with InferenceClient(cluster.inference_url) as client:
        with pytest.raises(HTTPStatusError) as info:
            await client.post_continue_from_conversation_history(conversation(tools=(bad_tool,)))
        assert info.value.status_code == 400
    async with InferenceClient("http://127.0.0.1:9") as client:
        with pytest.raises(ServerUnreachable):
            await client.continue_from_conversation_history(conversation())
        with pytest.raises(ServerUnreachable):
            await client.health()


def test_sync_client(cluster: Cluster) -> None:
    with SyncInferenceClient(cluster.inference_url) as client:
        assert client.health() == "OK"
        assert client.continue_from_conversation_history(conversation()).text()
        with client.continue_from_conversation_history(LONG) as stream:
            for envelope in stream:
                if isinstance(envelope.response, ContentToken):
                    break
    anyio.run(wait_all_slots_free, cluster, 1.0)


@pytest.mark.anyio
async def test_errors_leave_the_async_with_block_as_themselves(cluster: Cluster) -> None:
    """``except HTTPStatusError`` around the block catches it; no ExceptionGroup."""
    bad_tool = Tool(
        Function(
            name="f",
            description="",
            parameters=ValidatedParametersSchema(
                properties={"a": {"type": "string"}}, required=("missing",)
            ),
        )
    )
    try:
        async with InferenceClient(cluster.inference_url) as client:
            await client.post_continue_from_conversation_history(conversation(tools=(bad_tool,)))
    except HTTPStatusError as exc:
        assert exc.status_code == 400
    else:
        pytest.fail("no HTTPStatusError")
    with pytest.raises(ServerUnreachable) as connect:
        async with InferenceClient("http://127.0.0.1:9") as client:
            await client.continue_from_conversation_history(conversation())
    assert connect.value.__cause__ is not None  # the chain to the OS error is kept
    with pytest.raises(ValueError, match="mine"):
        async with InferenceClient(cluster.inference_url) as client:
            stream = await client.continue_from_conversation_history(conversation())
            async for _ in stream:
                raise ValueError("mine")
    await wait_all_slots_free(cluster, 5.0)
