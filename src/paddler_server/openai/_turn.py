"""What one generation produced, gathered from its results, in OpenAI terms.

Shared by chat completions, completions and responses: visible text, reasoning, parsed tool
calls, token usage and the finish reason.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import attrs

from paddler.wire import (
    ContentToken,
    Done,
    GeneratedTokenResult,
    InvalidJson,
    ParsedToolCall,
    ReasoningToken,
    TokenUsage,
    ToolCallParsed,
    ToolCallParseFailed,
    ToolCallToken,
    ToolCallValidationFailed,
    UndeterminableToken,
    UnrecognizedToolCallFormat,
)

__all__ = ["Turn", "now", "tool_call_json", "usage_json"]

logger = logging.getLogger("paddler_server.openai")


def now() -> int:
    return int(time.time())


def arguments_text(call: ParsedToolCall) -> str:
    if isinstance(call.arguments, InvalidJson):
        return call.arguments.raw
    return json.dumps(call.arguments.value, ensure_ascii=False)


def tool_call_json(call: ParsedToolCall, index: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": arguments_text(call)},
    }
    if index is not None:
        out = {"index": index, **out}
    return out


def usage_json(usage: TokenUsage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {
            "cached_tokens": usage.cached_prompt_tokens,
            "audio_tokens": usage.input_audio_tokens,
        },
        "completion_tokens_details": {
            "reasoning_tokens": usage.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


@attrs.define
class Turn:
    """Accumulates results; ``feed`` returns the visible delta, if any, as (kind, text)."""

    max_tokens: int
    content: list[str] = attrs.Factory(list)
    reasoning: list[str] = attrs.Factory(list)
    tool_calls: list[ParsedToolCall] = attrs.Factory(list)
    raw_tool_text: list[str] = attrs.Factory(list)
    tool_call_failed: bool = False
    usage: TokenUsage | None = None

    def feed(self, result: GeneratedTokenResult) -> tuple[str, str] | None:
        if isinstance(result, ContentToken | UndeterminableToken):
            self.content.append(result.text)
            return ("content", result.text)
        if isinstance(result, ReasoningToken):
            self.reasoning.append(result.text)
            return ("reasoning", result.text)
        if isinstance(result, ToolCallToken):
            self.raw_tool_text.append(result.text)
        elif isinstance(result, ToolCallParsed):
            self.tool_calls.extend(result.calls)
        elif isinstance(
            result, ToolCallParseFailed | ToolCallValidationFailed | UnrecognizedToolCallFormat
        ):
            logger.info("tool call not parsed: %s", result)
            self.tool_call_failed = True
        elif isinstance(result, Done):
            self.usage = result.usage
        return None

    @property
    def text(self) -> str:
        return "".join(self.content)

    @property
    def reasoning_text(self) -> str:
        return "".join(self.reasoning)

    def unparsed_tool_text(self) -> str:
        """Raw tool-call text that never parsed: shown as content rather than dropped."""
        if self.tool_calls or not self.tool_call_failed:
            return ""
        return "".join(self.raw_tool_text)

    @property
    def finish_reason(self) -> str:
        if self.tool_calls:
            return "tool_calls"
        usage = self.usage
        if usage is not None:
            counted = usage.content_tokens + usage.reasoning_tokens + usage.undeterminable_tokens
            if counted >= self.max_tokens:
                return "length"
        return "stop"
