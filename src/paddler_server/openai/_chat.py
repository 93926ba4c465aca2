"""``POST /v1/chat/completions``: one answer as JSON, or a stream of chunks over SSE."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from paddler._ids import openai_id
from paddler.wire import DEFAULT_POOL
from paddler_server.openai._chat_request import ChatRequest
from paddler_server.openai._generation import generate, sse_results
from paddler_server.openai._respond import Responder, sse_event
from paddler_server.openai._turn import Turn, now, tool_call_json, usage_json

if TYPE_CHECKING:
    from paddler.balancer import Balancer

__all__ = ["answer_chat"]

FINGERPRINT = "fp_paddler"


def _message(turn: Turn) -> dict[str, Any]:
    text = turn.text + turn.unparsed_tool_text()
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text if text or not turn.tool_calls else None,
        "refusal": None,
        "annotations": [],
    }
    if turn.reasoning:
        message["reasoning_content"] = turn.reasoning_text
    if turn.tool_calls:
        message["tool_calls"] = [tool_call_json(c) for c in turn.tool_calls]
    return message


async def answer_chat(
    balancer: Balancer,
    request: ChatRequest,
    model: str,
    responder: Responder,
    *,
    pool: str = DEFAULT_POOL,
) -> None:
    completion_id = openai_id("chatcmpl-")
    created = now()
    turn = Turn(max_tokens=request.params.max_tokens)
    async with generate(balancer, request.params, request.overrides, pool=pool) as results:
        if not request.stream:
            async for result in results:
                turn.feed(result)
            assert turn.usage is not None
            await responder.json(
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": _message(turn),
                            "logprobs": None,
                            "finish_reason": turn.finish_reason,
                        }
                    ],
                    "usage": usage_json(turn.usage),
                    "service_tier": "default",
                    "system_fingerprint": FINGERPRINT,
                }
            )
            return

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            body: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": FINGERPRINT,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
                ],
            }
            if request.include_usage:
                body["usage"] = None
            return sse_event(body)

        async with sse_results(results, responder) as stream:
            await responder.send(chunk({"role": "assistant", "content": ""}))
            async for result in stream:
                delta = turn.feed(result)
                if delta is not None and delta[1]:
                    kind, text = delta
                    key = "content" if kind == "content" else "reasoning_content"
                    await responder.send(chunk({key: text}), hold=results.ready)
            leftover = turn.unparsed_tool_text()
            if leftover:
                await responder.send(chunk({"content": leftover}))
            if turn.tool_calls:
                calls = [tool_call_json(c, i) for i, c in enumerate(turn.tool_calls)]
                await responder.send(chunk({"tool_calls": calls}))
            await responder.send(chunk({}, turn.finish_reason))
            if request.include_usage and turn.usage is not None:
                await responder.send(
                    sse_event(
                        {
                            "id": completion_id,
                            "object": "chat.completion.chunk",
                            "created": created,
                            "model": model,
                            "system_fingerprint": FINGERPRINT,
                            "choices": [],
                            "usage": usage_json(turn.usage),
                        }
                    )
                )
