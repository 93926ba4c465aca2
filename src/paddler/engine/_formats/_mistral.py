"""Mistral / Ministral / Magistral: `[THINK]…[/THINK]` and `[TOOL_CALLS]`.

Older templates (7B v0.3, Nemo) write `[TOOL_CALLS][{"name": ..., "arguments": {...}}]`;
newer ones (Small 3.2, Magistral, Ministral 3) write `[TOOL_CALLS]name[ARGS]{...}`, one
`[TOOL_CALLS]` per call. There is no closing marker: a call ends where its JSON ends.
"""

from __future__ import annotations

import json

from paddler.engine._classifier import Section
from paddler.engine._formats._calls import Call, CallShapeError, CallSyntaxError, json_calls
from paddler.engine._formats._format import ChatFormat, StreamParser
from paddler.engine._formats._hermes import thinking_table
from paddler.engine._formats._machine import Marker, MarkerMachine, ToolBody

TOOL_CALLS = "[TOOL_CALLS]"
ARGS = "[ARGS]"
CALL_ID = "[CALL_ID]"
THINK_OPEN = "[THINK]"
THINK_CLOSE = "[/THINK]"
EOS = "</s>"

_CALLS = Marker(
    TOOL_CALLS,
    Section.TOOL_CALL,
    Section.TOOL_CALL,
    ToolBody(closes=(EOS,), ends_with_json=True, json_after=ARGS),
)

_TABLE = thinking_table(THINK_OPEN, THINK_CLOSE, _CALLS)


def read_calls(text: str) -> list[Call]:
    """`[{"name", "arguments"}]` (v3) or `name[ARGS]{...}` / `name[CALL_ID]id[ARGS]{...}`."""
    body = text.strip()
    if body[:1] in ("[", "{"):
        return json_calls(body)
    if ARGS not in body:
        raise CallShapeError(f"expected {TOOL_CALLS}name{ARGS}{{...}} or a JSON list of calls")
    name, arguments = body.split(ARGS, 1)
    name = name.split(CALL_ID, 1)[0].strip()
    if not name:
        raise CallShapeError(f"no tool name before {ARGS}")
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError as exc:
        raise CallSyntaxError(f"Tool call is not valid JSON: {exc}") from exc
    return [{"name": name, "arguments": value}]


def _parser(tools: bool) -> StreamParser:
    return MarkerMachine(_TABLE, section=Section.UNDETERMINED, turn_ends=(EOS,))


MISTRAL = ChatFormat("mistral", _parser, read_calls)
