"""Qwen 2.5 / Qwen 3 / Hermes: `<think>…</think>` and `<tool_call>{json}</tool_call>`.

Also the fallback for templates of no known family: there the same markers are tried
(as Paddler's parser duck-types them) but unmarked text is plain content.
"""

from __future__ import annotations

from paddler.engine._classifier import Section
from paddler.engine._formats._calls import json_calls
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

THINKING: Table = {
    Section.CONTENT: (
        Marker(THINK_OPEN, Section.REASONING, Section.REASONING),
        Marker(THINK_CLOSE, Section.CONTENT, Section.CONTENT),  # a stray close is hidden
        HERMES_TOOL,
    ),
    Section.REASONING: (Marker(THINK_CLOSE, Section.CONTENT, Section.REASONING),),
}

_TURN_ENDS = ("<|im_end|>",)


def _hermes(tools: bool) -> StreamParser:
    return MarkerMachine(THINKING, section=Section.UNDETERMINED, turn_ends=_TURN_ENDS)


def _generic(tools: bool) -> StreamParser:
    return MarkerMachine(THINKING, section=Section.CONTENT, turn_ends=_TURN_ENDS)


HERMES = ChatFormat("hermes", _hermes, json_calls)
GENERIC = ChatFormat("generic", _generic, json_calls)
