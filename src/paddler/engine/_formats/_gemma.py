"""Gemma 3: no reasoning; tool calls in a fenced block or as a bare JSON message.

Gemma 3 has no tool syntax in its template; Google's function-calling guide has it answer
with a ```` ```tool_code ```` block holding Python calls (`get_weather(city="Paris")`), or
with a JSON object `{"name": ..., "parameters": {...}}` (held and probed when the request
offered tools).
"""

from __future__ import annotations

from paddler.engine._classifier import Section
from paddler.engine._formats._calls import json_or_python_calls
from paddler.engine._formats._format import ChatFormat, StreamParser
from paddler.engine._formats._hermes import HERMES_TOOL
from paddler.engine._formats._machine import Marker, MarkerMachine, Table, ToolBody

FENCE_CLOSE = "```"
END_OF_TURN = "<end_of_turn>"

_FENCE = ToolBody(closes=(FENCE_CLOSE,))

_TABLE: Table = {
    Section.CONTENT: (
        Marker("```tool_code", Section.TOOL_CALL, Section.TOOL_CALL, _FENCE),
        Marker("```tool_call", Section.TOOL_CALL, Section.TOOL_CALL, _FENCE),
        HERMES_TOOL,
    ),
}


def _parser(tools: bool) -> StreamParser:
    return MarkerMachine(
        _TABLE, section=Section.UNDETERMINED, probe_json=tools, turn_ends=(END_OF_TURN,)
    )


GEMMA3 = ChatFormat("gemma3", _parser, json_or_python_calls)
