"""Qwen 2.5 / Qwen 3 / Hermes: `<think>…</think>` and `<tool_call>{json}</tool_call>`.

Qwen3-Coder and Qwen 3.5 write the call inside `<tool_call>` as XML tags instead
(`<function=name><parameter=key>value</parameter></function>`); both are read.

Also the fallback for templates of no known family: there the same markers are tried
(as Paddler's parser duck-types them) but unmarked text is plain content.
"""

from __future__ import annotations

import json
import re

from paddler.engine._classifier import Section
from paddler.engine._formats._calls import Call, CallShapeError, json_calls
from paddler.engine._formats._format import ChatFormat, StreamParser
from paddler.engine._formats._machine import Marker, MarkerMachine, Table, ToolBody

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
TOOL_OPEN = "<tool_call>"
TOOL_CLOSE = "</tool_call>"

#: `<tool_call>` opens a call in every family (forced calls use it); `</tool_call>` inside a
#: JSON string does not end it.
HERMES_TOOL = Marker(
    TOOL_OPEN, Section.TOOL_CALL, Section.TOOL_CALL, ToolBody(closes=(TOOL_CLOSE,))
)


def thinking_table(open_: str, close: str, *calls: Marker) -> Table:
    """Reasoning between `open_` and `close`, then content; `calls` (and `<tool_call>`) open a
    tool call from either section."""
    return {
        Section.CONTENT: (
            Marker(open_, Section.REASONING, Section.REASONING),
            Marker(close, Section.CONTENT, Section.CONTENT),  # a stray close is hidden
            *calls,
            HERMES_TOOL,
        ),
        # a call may start without closing the reasoning (as Paddler's classifier, and forced
        # `tool_choice` grammars, do)
        Section.REASONING: (Marker(close, Section.CONTENT, Section.REASONING), *calls, HERMES_TOOL),
    }


THINKING = thinking_table(THINK_OPEN, THINK_CLOSE)

_TURN_ENDS = ("<|im_end|>",)

_FUNCTION = re.compile(r"<function=([^>\s]+)>(.*?)(?:</function>|$)", re.DOTALL)
_PARAMETER = re.compile(r"<parameter=([^>\s]+)>\n?(.*?)\n?</parameter>", re.DOTALL)


def _xml_value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def read_calls(text: str) -> list[Call]:
    """A JSON call (or list), or Qwen's XML-tag calls."""
    if "<function=" not in text:
        return json_calls(text)
    calls = [
        {"name": name, "arguments": {k: _xml_value(v) for k, v in _PARAMETER.findall(body)}}
        for name, body in _FUNCTION.findall(text)
    ]
    if not calls:
        raise CallShapeError("expected <function=name> inside the tool call")
    return calls


def _hermes(tools: bool) -> StreamParser:
    return MarkerMachine(THINKING, section=Section.UNDETERMINED, turn_ends=_TURN_ENDS)


def _generic(tools: bool) -> StreamParser:
    return MarkerMachine(THINKING, section=Section.CONTENT, turn_ends=_TURN_ENDS)


HERMES = ChatFormat("hermes", _hermes, read_calls)
GENERIC = ChatFormat("generic", _generic, read_calls)
