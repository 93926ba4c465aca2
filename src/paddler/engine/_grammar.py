"""Grammar constraints: GBNF as given, JSON Schema converted to GBNF, both checked by llama.cpp.

Also the grammar of a forced tool call (`SamplingOverrides.forced_tools`): built here, in the
engine worker, so the balancer never needs llama.cpp's JSON-schema converter.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from llama_cpp.llama_grammar import json_schema_to_gbnf

from paddler.engine._llama import GrammarSampler, LlamaError, LlamaModel
from paddler.wire import (
    GbnfGrammar,
    GrammarConstraint,
    GrammarInitializationFailed,
    GrammarLimitError,
    GrammarSyntaxError,
    JsonSchemaGrammar,
    Tool,
    check_gbnf,
    converter,
    load_json_schema,
)

GrammarFailure = GrammarSyntaxError | GrammarInitializationFailed

#: The forced call's own root rule; the JSON rules underneath keep the converter's names.
TOOL_CALL_ROOT = "paddler-tool-call"


def to_gbnf(constraint: GrammarConstraint) -> tuple[str, str] | GrammarSyntaxError:
    """The GBNF text and root rule of a constraint, or the syntax error to report.

    Limits are checked before the converter or llama.cpp's parser sees anything (see
    `paddler.wire.check_gbnf` and `load_json_schema`).
    """
    if isinstance(constraint, GbnfGrammar):
        try:
            check_gbnf(constraint.grammar)
        except GrammarLimitError as exc:
            return GrammarSyntaxError(f"Grammar rejected: {exc}")
        return constraint.grammar, constraint.root
    assert isinstance(constraint, JsonSchemaGrammar)
    try:
        load_json_schema(constraint.schema)
    except GrammarLimitError as exc:
        return GrammarSyntaxError(f"JSON schema rejected: {exc}")
    except ValueError as exc:
        return GrammarSyntaxError(f"Invalid JSON schema: {exc}")
    try:
        gbnf = json_schema_to_gbnf(constraint.schema)
    except Exception as exc:  # the converter raises a variety of errors for bad schemas
        return GrammarSyntaxError(f"Invalid JSON schema: {exc}")
    try:
        check_gbnf(gbnf)
    except GrammarLimitError as exc:
        return GrammarSyntaxError(f"JSON schema rejected: its grammar is too large ({exc})")
    return gbnf, "root"


def make_grammar_sampler(
    model: LlamaModel, constraint: GrammarConstraint
) -> GrammarSampler | GrammarFailure:
    """A grammar sampler, or the error variant; a bad grammar never reaches a decode."""
    resolved = to_gbnf(constraint)
    if isinstance(resolved, GrammarSyntaxError):
        return resolved
    gbnf, root = resolved
    if not gbnf.strip():
        return GrammarSyntaxError("The grammar is empty")
    try:
        return GrammarSampler(model, gbnf, root)
    except LlamaError:
        return GrammarSyntaxError(f"llama.cpp could not parse the grammar (root rule '{root}')")
    except Exception as exc:
        return GrammarInitializationFailed(f"Grammar sampler failed to start: {exc}")


def _call_schema(tool: Tool) -> dict[str, Any]:
    """The JSON of one call, ``{"name": <this tool>, "arguments": <its parameters>}``."""
    parameters = tool.function.parameters
    arguments = {"type": "object"} if parameters is None else converter.unstructure(parameters)
    return {
        "type": "object",
        "properties": {"name": {"const": tool.function.name}, "arguments": arguments},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def forced_tool_call_grammar(
    tools: Sequence[Tool], names: Sequence[str]
) -> GbnfGrammar | GrammarSyntaxError:
    """A grammar admitting exactly one call to one of the tools ``names`` picks.

    The call is written as ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, the
    marker every chat format here reads as a call, with the arguments shaped by the tool's
    schema.
    """
    by_name = {tool.function.name: tool for tool in tools}
    missing = [name for name in names if name not in by_name]
    if missing:
        return GrammarSyntaxError(
            f"forced_tools names {', '.join(map(repr, missing))}, not in the request's tools"
        )
    schemas = [_call_schema(by_name[name]) for name in dict.fromkeys(names)]
    schema = schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
    resolved = to_gbnf(JsonSchemaGrammar(json.dumps(schema)))
    if isinstance(resolved, GrammarSyntaxError):
        return GrammarSyntaxError(
            f"Cannot build a grammar from the tool schemas: {resolved.message}"
        )
    gbnf, root = resolved
    rule = f'{TOOL_CALL_ROOT} ::= "<tool_call>\\n" {root} "\\n</tool_call>"\n'
    try:
        check_gbnf(rule + gbnf)
    except GrammarLimitError as exc:
        return GrammarSyntaxError(f"The tool schemas make a grammar that is too large: {exc}")
    return GbnfGrammar(grammar=rule + gbnf, root=TOOL_CALL_ROOT)
