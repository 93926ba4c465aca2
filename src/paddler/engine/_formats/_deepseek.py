"""DeepSeek-R1 (and its Qwen/Llama distills): `<think>...</think>`, and a tool-calls block.

The block is CALLS_BEGIN, then per call CALL_BEGIN `function` SEP `name`, a fenced JSON
argument object, CALL_END; then CALLS_END (the markers are full-width special tokens, see the
constants). The template opens `<think>` itself at the end of the prompt, so priming starts the
answer in reasoning.
"""

from __future__ import annotations

import json
import re

from paddler.engine._classifier import Section
from paddler.engine._formats._calls import Call, CallShapeError, CallSyntaxError, json_calls
from paddler.engine._formats._format import ChatFormat, StreamParser
from paddler.engine._formats._hermes import THINK_CLOSE, THINK_OPEN, thinking_table
from paddler.engine._formats._machine import Marker, MarkerMachine, ToolBody

CALLS_BEGIN = "<｜tool▁calls▁begin｜>"
CALLS_END = "<｜tool▁calls▁end｜>"
CALL_BEGIN = "<｜tool▁call▁begin｜>"
CALL_END = "<｜tool▁call▁end｜>"
SEP = "<｜tool▁sep｜>"
END_OF_SENTENCE = "<｜end▁of▁sentence｜>"

_CALLS = Marker(CALLS_BEGIN, Section.TOOL_CALL, Section.TOOL_CALL, ToolBody(closes=(CALLS_END,)))

_TABLE = thinking_table(THINK_OPEN, THINK_CLOSE, _CALLS)

_FENCED = re.compile(r"^\s*```(?:json)?\s*\n?(.*?)\n?\s*```\s*$", re.DOTALL)


def read_calls(text: str) -> list[Call]:
    """Each call: CALL_BEGIN [type] SEP name, fenced JSON arguments, CALL_END."""
    if CALL_BEGIN not in text and SEP not in text:
        return json_calls(text)  # a Hermes-shaped call
    calls: list[Call] = []
    for chunk in text.split(CALL_BEGIN)[1:]:
        body = chunk.split(CALL_END, 1)[0]
        if SEP not in body:
            raise CallShapeError(f"a DeepSeek tool call needs {SEP} between type and name")
        kind, rest = body.split(SEP, 1)
        if kind.strip() in ("", "function"):
            name, _, arguments = rest.partition("\n")
        else:  # V3.1 style: name SEP {args}
            name, arguments = kind, rest
        fenced = _FENCED.match(arguments)
        raw = fenced.group(1) if fenced else arguments
        try:
            value = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as exc:
            raise CallSyntaxError(f"Tool call arguments are not valid JSON: {exc}") from exc
        calls.append({"name": name.strip(), "arguments": value})
    if not calls:
        raise CallShapeError(f"expected {CALL_BEGIN} in the tool-call section")
    return calls


def _parser(tools: bool) -> StreamParser:
    return MarkerMachine(_TABLE, section=Section.UNDETERMINED, turn_ends=(END_OF_SENTENCE,))


DEEPSEEK_R1 = ChatFormat("deepseek_r1", _parser, read_calls)
