"""Inference request bodies (spec §2.2): conversation, raw prompt, tools, grammar."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from attrs import field, frozen

from ._markers import WIRE_REQUIRED

__all__ = [
    "ContentPart",
    "ContinueFromConversationHistoryParams",
    "ContinueFromRawPromptParams",
    "ConversationMessage",
    "Function",
    "GbnfGrammar",
    "GrammarConstraint",
    "ImageUrl",
    "ImageUrlPart",
    "JsonSchemaGrammar",
    "TextPart",
    "Tool",
    "ValidatedParametersSchema",
    "tool_schema_problems",
]


@frozen
class TextPart:
    """``{"type":"text","text":...}``"""

    text: str


@frozen
class ImageUrl:
    """Only ``url`` is allowed (a base64 data URI in practice)."""

    url: str


@frozen
class ImageUrlPart:
    """``{"type":"image_url","image_url":{"url":...}}``"""

    image_url: ImageUrl


ContentPart = TextPart | ImageUrlPart


@frozen
class ConversationMessage:
    """One chat message; ``content`` is a string or a list of parts."""

    role: str
    content: str | tuple[ContentPart, ...]


@frozen
class GbnfGrammar:
    """``{"type":"gbnf","grammar":...,"root":...}``"""

    grammar: str
    root: str


@frozen
class JsonSchemaGrammar:
    """``{"type":"json_schema","schema":"<the schema as a JSON string>"}``"""

    schema: str


GrammarConstraint = GbnfGrammar | JsonSchemaGrammar


@frozen(kw_only=True)
class ValidatedParametersSchema:
    """A tool's parameters schema; wire keys ``type``, ``properties``, ``required``,
    ``additionalProperties``. Absent keys are left out when written."""

    type: str = field(default="object", metadata=WIRE_REQUIRED)
    properties: dict[str, Any] | None = None
    required: tuple[str, ...] | None = None
    additional_properties: Any = None


@frozen(kw_only=True)
class Function:
    """A function tool's declaration."""

    name: str
    description: str
    parameters: ValidatedParametersSchema | None = None


@frozen
class Tool:
    """``{"type":"function","function":{...}}`` (the only tool kind)."""

    function: Function
    type: Literal["function"] = field(default="function", metadata=WIRE_REQUIRED)


@frozen(kw_only=True)
class ContinueFromConversationHistoryParams:
    """Body of ``POST /api/v1/continue_from_conversation_history``."""

    add_generation_prompt: bool
    conversation_history: tuple[ConversationMessage, ...]
    enable_thinking: bool
    max_tokens: int
    grammar: GrammarConstraint | None = None
    parse_tool_calls: bool = False
    tools: tuple[Tool, ...] = field(default=())


@frozen(kw_only=True)
class ContinueFromRawPromptParams:
    """Body of ``POST /api/v1/continue_from_raw_prompt``: the prompt is used as is."""

    raw_prompt: str
    max_tokens: int
    grammar: GrammarConstraint | None = None


def tool_schema_problems(tools: Iterable[Tool]) -> list[str]:
    """What the balancer rejects with 400: a ``required`` name missing from ``properties``.

    Returns one message per problem; an empty list means the tools are acceptable.
    """
    problems: list[str] = []
    for tool in tools:
        schema = tool.function.parameters
        if schema is None or not schema.required:
            continue
        properties = schema.properties or {}
        problems.extend(
            f"tool {tool.function.name!r}: required property {name!r} is not in properties"
            for name in schema.required
            if name not in properties
        )
    return problems
