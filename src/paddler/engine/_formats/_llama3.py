"""Llama 3.x: JSON tool calls, after `<|python_tag|>` or as a bare JSON message.

Custom tools answer with a bare `{"name": ..., "parameters": {...}}` message (held and
probed when the request offered tools); built-in tools follow `<|python_tag|>`, as JSON or as
a Python call (`brave_search.call(query="...")`). No reasoning markers.
"""

from __future__ import annotations

from paddler.engine._classifier import Section
from paddler.engine._formats._calls import Call, json_or_python_calls
from paddler.engine._formats._format import ChatFormat, StreamParser
from paddler.engine._formats._hermes import HERMES_TOOL
from paddler.engine._formats._machine import Marker, MarkerMachine, Table, ToolBody

PYTHON_TAG = "<|python_tag|>"
EOM = "<|eom_id|>"
EOT = "<|eot_id|>"

_TABLE: Table = {
    Section.CONTENT: (
        Marker(
            PYTHON_TAG,
            Section.TOOL_CALL,
            Section.TOOL_CALL,
            ToolBody(closes=(EOM, EOT), ends_with_json=True),
        ),
        HERMES_TOOL,
    ),
}


def read_calls(text: str) -> list[Call]:
    """JSON (one call, a list, or several separated by `;`) or Python call syntax."""
    parts = [p for p in text.split(";") if p.strip()] if text.strip().startswith("{") else []
    if len(parts) > 1:
        try:
            return [call for part in parts for call in json_or_python_calls(part)]
        except Exception:
            pass  # a `;` inside a string: read the text whole
    calls = json_or_python_calls(text)
    for call in calls:  # builtin tools: brave_search.call(query=...) names the tool
        if call["name"] == "call" and "." in text:
            call["name"] = text.strip().split(".", 1)[0]
    return calls


def _parser(tools: bool) -> StreamParser:
    return MarkerMachine(
        _TABLE, section=Section.UNDETERMINED, probe_json=tools, turn_ends=(EOT, EOM)
    )


LLAMA3 = ChatFormat("llama3", _parser, read_calls)
