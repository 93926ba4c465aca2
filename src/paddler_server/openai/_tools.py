"""OpenAI function tools → wire ``Tool``s, and the grammar that forces a tool call.

``tool_choice: "required"`` or a named function is honoured by constraining the model with a
GBNF grammar that only admits ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``
(the Hermes/Qwen format the engine parses), with the arguments shaped by the tool's schema.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from paddler.wire import (
    Function,
    GbnfGrammar,
    GrammarConstraint,
    JsonSchemaGrammar,
    Tool,
    ValidatedParametersSchema,
)
from paddler_server.openai._errors import invalid
from paddler_server.openai._fields import Object, child, opt_object, opt_str, req_str

__all__ = [
    "ToolChoice",
    "check_grammar_limits",
    "check_schema_limits",
    "forced_tool_call_grammar",
    "read_tool",
    "read_tool_choice",
]

logger = logging.getLogger("paddler_server.openai")

#: The grammar's own root rule; the JSON rules underneath keep the converter's names.
_ROOT = "paddler-tool-call"


def _read_parameters(schema: Object | None, path: str) -> ValidatedParametersSchema | None:
    if schema is None:
        return None
    kind = schema.get("type", "object")
    if kind != "object":
        raise invalid(
            child(path, "type"), f"a tool's parameters must be an object schema, got {kind!r}"
        )
    properties = opt_object(schema, "properties", path)
    required = schema.get("required")
    if required is not None and (
        not isinstance(required, list) or not all(isinstance(r, str) for r in required)
    ):
        raise invalid(child(path, "required"), "expected an array of property names")
    for name in required or ():
        if name not in (properties or {}):
            raise invalid(child(path, "required"), f"{name!r} is not in properties")
    return ValidatedParametersSchema(
        type="object",
        properties=dict(properties) if properties is not None else None,
        required=tuple(required) if required is not None else None,
        additional_properties=schema.get("additionalProperties"),
    )


def read_tool(obj: Any, path: str, *, flat: bool = False) -> Tool | None:
    """One ``{"type": "function", "function": {...}}`` (or the flat Responses-API shape).

    Any other tool type (``web_search``, ``file_search``, a custom tool, ...) is dropped and
    logged, returning ``None``, as Paddler drops it: clients that offer several tool types still
    get an answer, with the function tools only.
    """
    if not isinstance(obj, dict):
        raise invalid(path, "expected an object")
    kind = opt_str(obj, "type", path)
    if kind != "function":
        logger.info("%s: a tool of type %r is dropped (only function tools are used)", path, kind)
        return None
    fn_path = path if flat else child(path, "function")
    function = obj if flat else opt_object(obj, "function", path)
    if function is None:
        raise invalid(fn_path, "is required", code="missing_required_parameter")
    name = req_str(function, "name", fn_path)
    return Tool(
        Function(
            name=name,
            description=opt_str(function, "description", fn_path) or "",
            parameters=_read_parameters(
                opt_object(function, "parameters", fn_path), child(fn_path, "parameters")
            ),
        )
    )


ToolChoice = str | None
"""``None`` or ``"auto"``: the model decides; ``"none"``: no tools; ``"required"``: any tool;
any other string: that function by name."""


def read_tool_choice(body: Object, tools: Sequence[Tool], *, flat: bool = False) -> ToolChoice:
    value = body.get("tool_choice")
    if value is None or value in ("auto", "none", "required"):
        if value == "required" and not tools:
            raise invalid("tool_choice", "'required' needs at least one tool in 'tools'")
        return value
    if isinstance(value, dict):
        if value.get("type") != "function":
            # It names a kind of tool we drop (see read_tool); the model decides, as in Paddler.
            logger.info("tool_choice of type %r is ignored", value.get("type"))
            return None
        fn = value if flat else (value.get("function") or {})
        name = fn.get("name") if isinstance(fn, dict) else None
        param = "tool_choice.name" if flat else "tool_choice.function.name"
        if not isinstance(name, str):
            raise invalid(param, "is required", code="missing_required_parameter")
        if name not in {t.function.name for t in tools}:
            raise invalid(param, f"no tool named {name!r} in 'tools'")
        return name
    raise invalid("tool_choice", "expected 'auto', 'none', 'required' or a function choice")


def _call_schema(tool: Tool) -> dict[str, Any]:
    parameters = tool.function.parameters
    arguments: dict[str, Any] = {"type": "object"}
    if parameters is not None:
        if parameters.properties is not None:
            arguments["properties"] = parameters.properties
        if parameters.required is not None:
            arguments["required"] = list(parameters.required)
        if parameters.additional_properties is not None:
            arguments["additionalProperties"] = parameters.additional_properties
    return {
        "type": "object",
        "properties": {"name": {"const": tool.function.name}, "arguments": arguments},
        "required": ["name", "arguments"],
        "additionalProperties": False,
    }


def check_schema_limits(schema: Any, param: str) -> None:
    """A 400 naming the field when a JSON schema is past a grammar limit (size, depth,
    repetition bounds, remote ``$ref``); checked before anything converts it."""
    from paddler.engine._grammar_limits import (  # lazy: the engine package loads llama.cpp
        MAX_SCHEMA_BYTES,
        GrammarLimitError,
        check_json_schema,
    )

    try:
        check_json_schema(schema)
    except GrammarLimitError as exc:
        where = param
        for key in exc.location:
            where = child(where, key)
        raise invalid(where, exc.message) from exc
    size = len(json.dumps(schema).encode())
    if size > MAX_SCHEMA_BYTES:
        raise invalid(param, f"the schema is {size} bytes; at most {MAX_SCHEMA_BYTES} are accepted")


def check_grammar_limits(grammar: GrammarConstraint, param: str) -> None:
    """The same limits for a Paddler grammar constraint (``param`` names it)."""
    from paddler.engine._grammar_limits import GrammarLimitError, check_gbnf

    if isinstance(grammar, JsonSchemaGrammar):
        try:
            schema = json.loads(grammar.schema)
        except (ValueError, RecursionError) as exc:
            raise invalid(child(param, "schema"), f"not valid JSON ({exc})") from exc
        check_schema_limits(schema, child(param, "schema"))
        return
    assert isinstance(grammar, GbnfGrammar)
    try:
        check_gbnf(grammar.grammar)
    except GrammarLimitError as exc:
        raise invalid(child(param, "grammar"), str(exc)) from exc


def forced_tool_call_grammar(
    tools: Sequence[Tool], choice: str, *, flat: bool = False
) -> GbnfGrammar:
    """A grammar admitting exactly one tool call (``choice`` = a name, or ``"required"``).

    Each chosen tool's schema is checked against the grammar limits first (a 400 naming the
    tool); callers run this off the event loop, as the conversion is CPU work.
    """
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    from paddler.engine._grammar_limits import GrammarLimitError, check_gbnf

    chosen = [
        (i, t) for i, t in enumerate(tools) if choice == "required" or t.function.name == choice
    ]
    for index, tool in chosen:
        fn_path = child("tools", index) if flat else child(child("tools", index), "function")
        check_schema_limits(
            _call_schema(tool)["properties"]["arguments"], child(fn_path, "parameters")
        )
    schemas = [_call_schema(t) for _, t in chosen]
    schema = schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
    try:
        gbnf = json_schema_to_gbnf(json.dumps(schema))
    except Exception as exc:  # the converter raises assorted errors on odd schemas
        raise invalid("tools", f"cannot build a grammar from the tool schemas: {exc}") from exc
    rule = f'{_ROOT} ::= "<tool_call>\\n" root "\\n</tool_call>"\n'
    try:
        check_gbnf(rule + gbnf)
    except GrammarLimitError as exc:
        raise invalid("tools", f"the tool schemas make a grammar that is too large: {exc}") from exc
    return GbnfGrammar(grammar=rule + gbnf, root=_ROOT)
