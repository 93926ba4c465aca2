"""OpenAI function tools → wire ``Tool``s, the tool choice, and the grammar limits checked early.

``tool_choice: "required"`` or a named function becomes ``SamplingOverrides.forced_tools``:
the agent's engine builds the grammar that admits only such a call (see
``paddler.engine._grammar.forced_tool_call_grammar``), so no schema is converted here and the
balancer process never loads llama.cpp. What runs here is the limit checks, a 400 naming the
field before dispatch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from paddler.wire import (
    MAX_SCHEMA_BYTES,
    Function,
    GbnfGrammar,
    GrammarConstraint,
    GrammarLimitError,
    JsonSchemaGrammar,
    Tool,
    ValidatedParametersSchema,
    check_gbnf,
    check_json_schema,
    converter,
)
from paddler_server.openai._errors import invalid
from paddler_server.openai._fields import Object, child, opt_object, opt_str, req_str

__all__ = [
    "ToolChoice",
    "check_grammar_limits",
    "check_schema_limits",
    "forced_tools",
    "read_tool",
    "read_tool_choice",
]

logger = logging.getLogger("paddler_server.openai")


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


def check_schema_limits(schema: Any, param: str) -> None:
    """A 400 naming the field when a JSON schema is past a grammar limit (size, depth,
    repetition bounds, remote ``$ref``); checked before anything converts it."""
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


def forced_tools(
    tools: Sequence[Tool], choice: ToolChoice, *, flat: bool = False
) -> tuple[str, ...]:
    """The tools a ``tool_choice`` forces a call to (none for ``auto``/``none``), each one's
    parameters checked against the grammar limits first (a 400 naming the tool)."""
    if choice is None or choice in ("auto", "none"):
        return ()
    chosen = [
        (i, t) for i, t in enumerate(tools) if choice == "required" or t.function.name == choice
    ]
    for index, tool in chosen:
        if tool.function.parameters is None:
            continue
        fn_path = child("tools", index) if flat else child(child("tools", index), "function")
        schema = converter.unstructure(tool.function.parameters)  # the arguments' JSON schema
        check_schema_limits(schema, child(fn_path, "parameters"))
    return tuple(tool.function.name for _, tool in chosen)
