"""``POST /v1/responses`` body → a wire conversation request (spec §2.3, plus sampling)."""

from __future__ import annotations

import json
from typing import Any

import attrs

from paddler.wire import (
    ContentPart,
    ContinueFromConversationHistoryParams,
    ConversationMessage,
    ImageUrl,
    ImageUrlPart,
    SamplingOverrides,
    TextPart,
    Tool,
)
from paddler_server.openai._chat_request import read_constraints, read_image_url
from paddler_server.openai._errors import invalid
from paddler_server.openai._fields import Object, child, opt_bool, opt_list, opt_object, opt_str
from paddler_server.openai._sampling import read_max_tokens, read_sampling

__all__ = ["ResponsesRequest", "read_responses_request"]

_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


@attrs.frozen
class ResponsesRequest:
    params: ContinueFromConversationHistoryParams
    overrides: SamplingOverrides | None
    model: str | None
    stream: bool
    instructions: str | None
    tools: tuple[Tool, ...]
    tool_choice: str | None
    text_format: dict[str, Any]


def _read_part(part: Any, path: str) -> ContentPart:
    if not isinstance(part, dict):
        raise invalid(path, "expected a content part object")
    kind = opt_str(part, "type", path)
    if kind in ("input_text", "output_text", "text", "refusal"):
        key = "refusal" if kind == "refusal" else "text"
        return TextPart(opt_str(part, key, path) or "")
    if kind == "input_image":
        if part.get("image_url") is None and part.get("file_id") is not None:
            raise invalid(
                child(path, "file_id"),
                "uploaded files are not supported; send image_url as a base64 data URI",
                code="unsupported_value",
            )
        return ImageUrlPart(ImageUrl(read_image_url(part, path)))
    raise invalid(child(path, "type"), f"unsupported content part type {kind!r}")


def _read_item(item: Any, path: str) -> ConversationMessage | None:
    if not isinstance(item, dict):
        raise invalid(path, "expected an input item object")
    kind = opt_str(item, "type", path) or "message"
    if kind == "message":
        role = opt_str(item, "role", path)
        if role not in _ROLES:
            raise invalid(child(path, "role"), f"unsupported role {role!r}")
        content = item.get("content")
        if isinstance(content, list):
            parts = tuple(
                _read_part(p, child(child(path, "content"), i)) for i, p in enumerate(content)
            )
            return ConversationMessage(role=_ROLES[role], content=parts)
        if not isinstance(content, str):
            raise invalid(child(path, "content"), "expected a string or an array of parts")
        return ConversationMessage(role=_ROLES[role], content=content)
    if kind == "function_call":
        # As Paddler renders it: an assistant message whose text is the call as compact JSON,
        # {"call_id":..,"name":..,"arguments":"<the arguments string>"}.
        call: dict[str, str] = {}
        for key in ("call_id", "name"):
            value = opt_str(item, key, path)
            if value is None:
                raise invalid(child(path, key), "is required")
            call[key] = value
        call["arguments"] = opt_str(item, "arguments", path) or "{}"
        text = json.dumps(call, ensure_ascii=False, separators=(",", ":"))
        return ConversationMessage(role="assistant", content=text)
    if kind == "function_call_output":
        output = item.get("output")
        text = output if isinstance(output, str) else json.dumps(output)
        return ConversationMessage(role="tool", content=text)
    return None  # reasoning and other item kinds carry nothing the model needs again


def _merge_tool_calls(messages: list[ConversationMessage]) -> list[ConversationMessage]:
    """Consecutive function_call items are one assistant turn."""
    merged: list[ConversationMessage] = []
    for message in messages:
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and message.role == previous.role == "assistant"
            and isinstance(message.content, str)
            and isinstance(previous.content, str)
            and message.content.startswith("<tool_call>")
        ):
            merged[-1] = ConversationMessage(
                role="assistant", content=f"{previous.content}\n{message.content}"
            )
        else:
            merged.append(message)
    return merged


def read_responses_request(body: Object) -> ResponsesRequest:
    if body.get("previous_response_id") is not None:
        raise invalid(
            "previous_response_id",
            "stored responses are not supported; send the whole conversation in 'input'",
            code="unsupported_value",
        )
    messages: list[ConversationMessage] = []
    instructions = opt_str(body, "instructions")
    if instructions:
        messages.append(ConversationMessage(role="system", content=instructions))
    raw = body.get("input")
    if isinstance(raw, str):
        messages.append(ConversationMessage(role="user", content=raw))
    elif isinstance(raw, list):
        items = [_read_item(item, child("input", i)) for i, item in enumerate(raw)]
        messages.extend(_merge_tool_calls([m for m in items if m is not None]))
    else:
        raise invalid("input", "expected a string or an array of input items")
    if not messages:
        raise invalid("input", "at least one message is required")
    text = opt_object(body, "text")
    fmt = opt_object(text, "format", "text") if text is not None else None
    constraints = read_constraints(body, fmt, "text.format", flat=True)
    opt_list(body, "include")
    return ResponsesRequest(
        params=ContinueFromConversationHistoryParams(
            add_generation_prompt=True,
            conversation_history=tuple(messages),
            enable_thinking=constraints.enable_thinking,
            max_tokens=read_max_tokens(body, "max_output_tokens"),
            grammar=constraints.grammar,
            parse_tool_calls=bool(constraints.tools),
            tools=constraints.tools,
        ),
        overrides=read_sampling(body, forced_tools=constraints.forced_tools),
        model=opt_str(body, "model"),
        stream=bool(opt_bool(body, "stream")),
        instructions=instructions,
        tools=constraints.tools,
        tool_choice=constraints.tool_choice,
        text_format=dict(fmt) if fmt is not None else {"type": "text"},
    )
