"""``POST /v1/responses``: the Responses API object, or its typed SSE event stream."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from paddler._ids import openai_id
from paddler.wire import DEFAULT_POOL, ParsedToolCall
from paddler_server.openai._errors import OpenAIError
from paddler_server.openai._generation import generate, prepend
from paddler_server.openai._respond import Responder, sse_event
from paddler_server.openai._responses_request import ResponsesRequest
from paddler_server.openai._turn import Turn, arguments_text, now

if TYPE_CHECKING:
    from paddler.balancer import Balancer

__all__ = ["answer_responses"]


def _function_call_item(call: ParsedToolCall, status: str = "completed") -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": "fc_" + call.id.removeprefix("call_"),
        "call_id": call.id,
        "name": call.name,
        "arguments": arguments_text(call),
        "status": status,
    }


def _message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [] if status == "in_progress" else [_text_part(text)]
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": content,
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _reasoning_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [] if status == "in_progress" else [{"type": "reasoning_text", "text": text}]
    return {"id": item_id, "type": "reasoning", "summary": [], "content": content, "status": status}


@attrs.define
class _Response:
    """The response object, shared by the final JSON and the stream's lifecycle events."""

    request: ResponsesRequest
    model: str
    id: str = attrs.Factory(lambda: openai_id("resp_"))
    created_at: int = attrs.Factory(now)

    def body(
        self,
        status: str,
        output: list[dict[str, Any]],
        turn: Turn | None = None,
        error: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        incomplete = None
        if turn is not None and status == "completed" and turn.finish_reason == "length":
            status, incomplete = "incomplete", {"reason": "max_output_tokens"}
        usage = None
        if turn is not None and turn.usage is not None:
            u = turn.usage
            usage = {
                "input_tokens": u.prompt_tokens,
                "input_tokens_details": {"cached_tokens": u.cached_prompt_tokens},
                "output_tokens": u.completion_tokens,
                "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
                "total_tokens": u.total_tokens,
            }
        overrides = self.request.overrides
        choice = self.request.tool_choice
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": error,
            "incomplete_details": incomplete,
            "instructions": self.request.instructions,
            "max_output_tokens": self.request.params.max_tokens,
            "model": self.model,
            "output": output,
            "parallel_tool_calls": True,
            "metadata": {},
            "tool_choice": (
                {"type": "function", "name": choice}
                if choice not in (None, "auto", "none", "required")
                else choice or "auto"
            ),
            "tools": [
                {
                    "type": "function",
                    "name": t.function.name,
                    "description": t.function.description,
                    "parameters": None,
                    "strict": False,
                }
                for t in self.request.tools
            ],
            "temperature": overrides.temperature
            if overrides and overrides.temperature is not None
            else 1.0,
            "top_p": overrides.top_p if overrides and overrides.top_p is not None else 1.0,
            "text": {"format": self.request.text_format},
            "usage": usage,
        }


def _final_output(turn: Turn) -> list[dict[str, Any]]:
    output: list[dict[str, Any]] = []
    if turn.reasoning:
        output.append(_reasoning_item(openai_id("rs_"), turn.reasoning_text))
    text = turn.text + turn.unparsed_tool_text()
    if text or not turn.tool_calls:
        output.append(_message_item(openai_id("msg_"), text))
    output.extend(_function_call_item(c) for c in turn.tool_calls)
    return output


@attrs.define
class _EventStream:
    """Emits the event sequence, opening and closing one output item per section."""

    responder: Responder
    sequence: int = 0
    output: list[dict[str, Any]] = attrs.Factory(list)
    open_kind: str | None = None
    open_id: str = ""
    open_text: list[str] = attrs.Factory(list)

    async def emit(self, kind: str, *, hold: bool = False, **fields: Any) -> None:
        await self.responder.send(
            sse_event({"type": kind, "sequence_number": self.sequence, **fields}, event=kind),
            hold=hold,
        )
        self.sequence += 1

    @property
    def index(self) -> int:
        return len(self.output)

    def _part_ids(self) -> dict[str, Any]:
        """The ids that place a delta or a done event in the open item's content part."""
        return {"item_id": self.open_id, "output_index": self.index, "content_index": 0}

    async def text(self, kind: str, delta: str, *, hold: bool = False) -> None:
        """A text delta; ``hold``: the next result has arrived, so it may leave with it."""
        if self.open_kind != kind:
            await self.close()
            await self.open(kind)
        self.open_text.append(delta)
        ids = self._part_ids()
        if kind == "content":
            await self.emit(
                "response.output_text.delta", hold=hold, **ids, delta=delta, logprobs=[]
            )
        else:
            await self.emit("response.reasoning_text.delta", hold=hold, **ids, delta=delta)

    async def open(self, kind: str) -> None:
        self.open_kind, self.open_text = kind, []
        if kind == "content":
            self.open_id = openai_id("msg_")
            item = _message_item(self.open_id, "", "in_progress")
        else:
            self.open_id = openai_id("rs_")
            item = _reasoning_item(self.open_id, "", "in_progress")
        await self.emit("response.output_item.added", output_index=self.index, item=item)
        if kind == "content":
            await self.emit(
                "response.content_part.added",
                item_id=self.open_id,
                output_index=self.index,
                content_index=0,
                part=_text_part(""),
            )

    async def close(self) -> None:
        if self.open_kind is None:
            return
        text = "".join(self.open_text)
        ids = self._part_ids()
        if self.open_kind == "content":
            await self.emit("response.output_text.done", **ids, text=text, logprobs=[])
            await self.emit("response.content_part.done", **ids, part=_text_part(text))
            item = _message_item(self.open_id, text)
        else:
            await self.emit("response.reasoning_text.done", **ids, text=text)
            item = _reasoning_item(self.open_id, text)
        await self.emit("response.output_item.done", output_index=self.index, item=item)
        self.output.append(item)
        self.open_kind = None

    async def function_call(self, call: ParsedToolCall) -> None:
        await self.close()
        item = _function_call_item(call)
        ids = {"item_id": item["id"], "output_index": self.index}
        await self.emit(
            "response.output_item.added",
            output_index=self.index,
            item={**item, "arguments": "", "status": "in_progress"},
        )
        await self.emit("response.function_call_arguments.delta", **ids, delta=item["arguments"])
        await self.emit(
            "response.function_call_arguments.done",
            **ids,
            arguments=item["arguments"],
            name=call.name,
        )
        await self.emit("response.output_item.done", output_index=self.index, item=item)
        self.output.append(item)


async def answer_responses(
    balancer: Balancer,
    request: ResponsesRequest,
    model: str,
    responder: Responder,
    *,
    pool: str = DEFAULT_POOL,
) -> None:
    response = _Response(request, model)
    turn = Turn(max_tokens=request.params.max_tokens)
    async with generate(balancer, request.params, request.overrides, pool=pool) as results:
        if not request.stream:
            async for result in results:
                turn.feed(result)
            await responder.json(response.body("completed", _final_output(turn), turn))
            return
        iterator = aiter(results)
        first = await anext(iterator)
        await responder.start_sse()
        events = _EventStream(responder)
        await events.emit("response.created", response=response.body("in_progress", []))
        await events.emit("response.in_progress", response=response.body("in_progress", []))
        try:
            async for result in prepend(first, iterator):
                calls_before = len(turn.tool_calls)
                delta = turn.feed(result)
                if delta is not None and delta[1]:
                    await events.text(*delta, hold=results.ready)
                for call in turn.tool_calls[calls_before:]:
                    await events.function_call(call)
            leftover = turn.unparsed_tool_text()
            if leftover:
                await events.text("content", leftover)
            has_message = events.open_kind == "content" or any(
                item["type"] == "message" for item in events.output
            )
            if not has_message and not turn.tool_calls:
                await events.open("content")
            await events.close()
            final = response.body("completed", events.output, turn)
            # Cut off by max_output_tokens: OpenAI ends such a stream with response.incomplete.
            await events.emit(f"response.{final['status']}", response=final)
        except OpenAIError as exc:
            await events.close()
            error = {"code": exc.code or "server_error", "message": exc.message}
            await events.emit(
                "response.failed", response=response.body("failed", events.output, turn, error)
            )
