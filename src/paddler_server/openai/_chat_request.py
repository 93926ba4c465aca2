"""``POST /v1/chat/completions`` body → a wire conversation request plus sampling overrides.

Pure functions: every unsupported value is a 400 naming its field; nothing here does I/O.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from paddler.wire import (
    ContentPart,
    ContinueFromConversationHistoryParams,
    ConversationMessage,
    GrammarConstraint,
    ImageUrl,
    ImageUrlPart,
    JsonSchemaGrammar,
    SamplingOverrides,
    TextPart,
    Tool,
    WireError,
    converter,
)
from paddler_server.openai._errors import invalid
from paddler_server.openai._fields import (
    Object,
    child,
    opt_bool,
    opt_int,
    opt_list,
    opt_object,
    opt_str,
)
from paddler_server.openai._sampling import read_max_tokens, read_sampling
from paddler_server.openai._tools import (
    ToolChoice,
    check_grammar_limits,
    check_schema_limits,
    forced_tools,
    read_tool,
    read_tool_choice,
)

__all__ = [
    "ChatRequest",
    "Constraints",
    "read_chat_request",
    "read_constraints",
    "read_grammar_extension",
    "read_image_url",
    "tool_call_text",
]

_ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
    "function": "tool",
}


@attrs.frozen
class ChatRequest:
    """What a chat completion asks for, in the terms the balancer understands."""

    params: ContinueFromConversationHistoryParams
    overrides: SamplingOverrides | None
    model: str | None
    stream: bool
    include_usage: bool


def tool_call_text(name: str, arguments: Any) -> str:
    """An earlier tool call as the model writes one (the format the engine parses)."""
    payload = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"<tool_call>\n{payload}\n</tool_call>"


def _read_part(part: Any, path: str) -> ContentPart:
    if not isinstance(part, dict):
        raise invalid(path, "expected a content part object")
    kind = opt_str(part, "type", path)
    if kind in ("text", "input_text", "output_text", "refusal"):
        key = "refusal" if kind == "refusal" else "text"
        text = opt_str(part, key, path)
        if text is None:
            raise invalid(child(path, key), "is required", code="missing_required_parameter")
        return TextPart(text)
    if kind == "image_url":
        return ImageUrlPart(ImageUrl(read_image_url(part, path)))
    raise invalid(child(path, "type"), f"unsupported content part type {kind!r}")


def read_image_url(part: Object, path: str) -> str:
    """An image part's URL: ``image_url`` as OpenAI's ``{"url", "detail"}`` object (``detail``
    is accepted and has no effect) or as a plain string. Whether the URL is usable (a base64
    data URI) is the agent's to say: it answers ``ImageDecodingFailed`` (a 400) otherwise."""
    value = part.get("image_url")
    field = child(path, "image_url")
    if isinstance(value, dict):
        field = child(field, "url")
        value = value.get("url")
    if not isinstance(value, str) or not value:
        raise invalid(
            field,
            "an image URL is required: the image as a base64 data URI (data:image/png;base64,...)",
            code="missing_required_parameter" if value is None else "invalid_value",
        )
    return value


def _read_content(message: Object, path: str) -> str | tuple[ContentPart, ...]:
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return tuple(_read_part(p, child(child(path, "content"), i)) for i, p in enumerate(content))
    raise invalid(child(path, "content"), "expected a string or an array of content parts")


def _append_text(
    content: str | tuple[ContentPart, ...], text: str
) -> str | tuple[ContentPart, ...]:
    if isinstance(content, str):
        return f"{content}\n{text}" if content else text
    return (*content, TextPart(text))


def _read_tool_calls(message: Object, path: str) -> list[str]:
    calls = opt_list(message, "tool_calls", path) or []
    texts = []
    for i, call in enumerate(calls):
        call_path = child(child(path, "tool_calls"), i)
        fn = opt_object(call, "function", call_path) if isinstance(call, dict) else None
        if fn is None:
            raise invalid(child(call_path, "function"), "is required")
        fn_path = child(call_path, "function")
        name = opt_str(fn, "name", fn_path)
        raw = opt_str(fn, "arguments", fn_path) or "{}"
        if name is None:
            raise invalid(child(fn_path, "name"), "is required")
        try:
            arguments: Any = json.loads(raw)
        except ValueError:
            arguments = raw
        texts.append(tool_call_text(name, arguments))
    return texts


def read_messages(body: Object) -> tuple[ConversationMessage, ...]:
    messages = opt_list(body, "messages")
    if not messages:
        raise invalid(
            "messages", "at least one message is required", code="missing_required_parameter"
        )
    result = []
    for i, message in enumerate(messages):
        path = child("messages", i)
        if not isinstance(message, dict):
            raise invalid(path, "expected a message object")
        role = opt_str(message, "role", path)
        if role not in _ROLES:
            raise invalid(
                child(path, "role"),
                f"unsupported role {role!r}; expected one of " + ", ".join(sorted(_ROLES)),
            )
        content = _read_content(message, path)
        if role == "assistant":
            for text in _read_tool_calls(message, path):
                content = _append_text(content, text)
        result.append(ConversationMessage(role=_ROLES[role], content=content))
    return tuple(result)


def read_response_format(fmt: Object | None, path: str) -> GrammarConstraint | None:
    """``json_object`` → any JSON object; ``json_schema`` → that schema; ``text`` → none."""
    if fmt is None:
        return None
    kind = opt_str(fmt, "type", path)
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return JsonSchemaGrammar(json.dumps({"type": "object"}))
    if kind == "json_schema":
        # Chat nests {"json_schema": {"name", "schema"}}; Responses flattens it into the format.
        spec = opt_object(fmt, "json_schema", path)
        spec_path = child(path, "json_schema") if spec is not None else path
        spec = spec if spec is not None else fmt
        schema = spec.get("schema")
        if not isinstance(schema, dict | bool):
            raise invalid(child(spec_path, "schema"), "a JSON schema object is required")
        check_schema_limits(schema, child(spec_path, "schema"))
        return JsonSchemaGrammar(json.dumps(schema))
    raise invalid(child(path, "type"), f"unsupported response format {kind!r}")


def read_grammar_extension(body: Object) -> GrammarConstraint | None:
    """Paddler's own ``grammar`` field (a wire ``GrammarConstraint``), e.g. via ``extra_body``."""
    value = body.get("grammar")
    if value is None:
        return None
    try:
        grammar: GrammarConstraint = converter.structure(value, GrammarConstraint)  # type: ignore[arg-type]
    except (WireError, Exception) as exc:
        raise invalid("grammar", f"expected a Paddler grammar constraint ({exc})") from exc
    check_grammar_limits(grammar, "grammar")
    return grammar


def resolve_thinking(body: Object, constrained: bool, grammar_field: str) -> bool:
    """Thinking is on unless asked off, or a grammar (``constrained``: from ``grammar_field``)
    needs it off (the two are incompatible)."""
    explicit = opt_bool(body, "enable_thinking")
    field = "enable_thinking"
    kwargs = opt_object(body, "chat_template_kwargs")
    if explicit is None and kwargs is not None:
        explicit = opt_bool(kwargs, "enable_thinking", "chat_template_kwargs")
        field = "chat_template_kwargs.enable_thinking"
    effort = opt_str(body, "reasoning_effort")
    reasoning = opt_object(body, "reasoning")
    if effort is None and reasoning is not None:
        effort = opt_str(reasoning, "effort", "reasoning")
        field = "reasoning.effort"
    elif effort is not None:
        field = "reasoning_effort"
    if explicit is None and effort is not None:
        explicit = effort != "none"
    if constrained:
        if explicit:
            raise invalid(
                field,
                f"thinking cannot be combined with {grammar_field}; set reasoning effort to 'none'",
            )
        return False
    return True if explicit is None else explicit


def _reject_unsupported(body: Object) -> None:
    n = opt_int(body, "n")
    if n is not None and n != 1:
        raise invalid("n", "only n=1 is supported", code="unsupported_value")
    if opt_bool(body, "logprobs"):
        raise invalid("logprobs", "log probabilities are not supported", code="unsupported_value")
    if body.get("top_logprobs"):
        raise invalid(
            "top_logprobs", "log probabilities are not supported", code="unsupported_value"
        )
    if body.get("logit_bias"):
        raise invalid("logit_bias", "logit bias is not supported", code="unsupported_value")
    modalities = opt_list(body, "modalities")
    if modalities and any(m != "text" for m in modalities):
        raise invalid(
            "modalities", "only the 'text' modality is supported", code="unsupported_value"
        )


def read_tools(body: Object, *, flat: bool = False) -> tuple[Tool, ...]:
    tools = opt_list(body, "tools") or []
    read = (read_tool(t, child("tools", i), flat=flat) for i, t in enumerate(tools))
    return tuple(tool for tool in read if tool is not None)  # other tool types are dropped


@attrs.frozen
class Constraints:
    """What shapes a request's output: the tools offered, one grammar or the tools a call is
    forced to (the engine builds that grammar), and thinking."""

    tools: tuple[Tool, ...]
    tool_choice: ToolChoice
    grammar: GrammarConstraint | None
    enable_thinking: bool
    forced_tools: tuple[str, ...] = ()


def read_constraints(
    body: Object, fmt: Object | None, format_field: str, *, flat: bool = False
) -> Constraints:
    """Tools and tool choice, then at most one grammar: the response format ``fmt`` (read
    from ``format_field``), Paddler's ``grammar``, or a forced tool call (``forced_tools``)."""
    tools = read_tools(body, flat=flat)
    choice = read_tool_choice(body, tools, flat=flat)
    grammar = read_response_format(fmt, format_field)
    grammar_field = format_field
    extension = read_grammar_extension(body)
    if extension is not None:
        if grammar is not None:
            raise invalid("grammar", f"cannot be combined with {format_field}")
        grammar, grammar_field = extension, "grammar"
    forced = forced_tools(tools, choice, flat=flat)
    if choice == "none":
        tools = ()
    elif forced:
        if grammar is not None:
            raise invalid(
                "tool_choice", f"a forced tool call cannot be combined with {grammar_field}"
            )
        grammar_field = "tool_choice"
    thinking = resolve_thinking(body, grammar is not None or bool(forced), grammar_field)
    return Constraints(tools, choice, grammar, thinking, forced)


def read_chat_request(body: Object) -> ChatRequest:
    _reject_unsupported(body)
    messages = read_messages(body)
    constraints = read_constraints(body, opt_object(body, "response_format"), "response_format")
    stream = bool(opt_bool(body, "stream"))
    options = opt_object(body, "stream_options")
    include_usage = bool(options and opt_bool(options, "include_usage", "stream_options"))
    params = ContinueFromConversationHistoryParams(
        add_generation_prompt=True,
        conversation_history=messages,
        enable_thinking=constraints.enable_thinking,
        max_tokens=read_max_tokens(body, "max_completion_tokens", "max_tokens"),
        grammar=constraints.grammar,
        parse_tool_calls=bool(constraints.tools),
        tools=constraints.tools,
    )
    return ChatRequest(
        params=params,
        overrides=read_sampling(body, forced_tools=constraints.forced_tools),
        model=opt_str(body, "model"),
        stream=stream,
        include_usage=include_usage,
    )
