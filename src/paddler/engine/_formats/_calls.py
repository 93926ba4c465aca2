"""Read the calls out of one tool-call section's text, in the shapes model families write.

Each reader returns `[{"name": str, "arguments": <any>}]`, or raises `CallSyntaxError` (the
text is broken: `ToolCallParseFailed`) or `CallShapeError` (well-formed, but not a call:
`UnrecognizedToolCallFormat`).
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from typing import Any

Call = dict[str, Any]
CallReader = Callable[[str], list[Call]]

SHAPE_MESSAGE = "expected an object with 'name' and 'arguments'"


class CallSyntaxError(Exception):
    """The section's text is not valid in its format (bad JSON, bad Python call syntax)."""


class CallShapeError(Exception):
    """The text parses but is not a tool call (no name, not an object)."""


def _as_call(item: object) -> Call:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise CallShapeError(SHAPE_MESSAGE)
    if "function" in item and isinstance(item["function"], dict):  # {"type":"function",...}
        return _as_call(item["function"])
    arguments = item.get("arguments", item.get("parameters", {}))
    return {"name": item["name"], "arguments": arguments}


def json_calls(text: str) -> list[Call]:
    """One JSON object `{"name", "arguments"|"parameters"}`, or a list of them."""
    try:
        payload = json.loads(text.strip())
    except json.JSONDecodeError as exc:
        raise CallSyntaxError(f"Tool call is not valid JSON: {exc}") from exc
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise CallShapeError(SHAPE_MESSAGE)
    return [_as_call(item) for item in items]


_PY_CONSTANTS = {"true": True, "false": False, "null": None, "none": None}


def _literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Name) and node.id.lower() in _PY_CONSTANTS:
        return _PY_CONSTANTS[node.id.lower()]
    if isinstance(node, ast.List | ast.Tuple):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Dict):
        return {
            str(_literal(k)) if k is not None else "": _literal(v)
            for k, v in zip(node.keys, node.values, strict=True)
        }
    try:
        return ast.literal_eval(node)
    except ValueError as exc:
        raise CallShapeError(f"argument {ast.unparse(node)!r} is not a literal value") from exc


def _call_name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):  # default_api.get_weather, functions.get_weather
        return func.attr
    raise CallShapeError(f"{ast.unparse(func)!r} is not a function name")


def python_calls(text: str) -> list[Call]:
    """Python call syntax, one call a line: `get_weather(city="Paris")`, `print(f(x=1))`."""
    try:
        module = ast.parse(text.strip(), mode="exec")
    except SyntaxError as exc:
        raise CallSyntaxError(f"Tool call is not a valid Python call: {exc.msg}") from exc
    calls: list[Call] = []
    for statement in module.body:
        if not isinstance(statement, ast.Expr) or not isinstance(statement.value, ast.Call):
            raise CallShapeError("expected function calls such as name(arg=value)")
        call = statement.value
        if _call_name(call.func) == "print" and len(call.args) == 1 and not call.keywords:
            inner = call.args[0]
            if not isinstance(inner, ast.Call):
                raise CallShapeError("expected function calls such as name(arg=value)")
            call = inner
        if call.args:
            raise CallShapeError(f"call of {_call_name(call.func)!r} has positional arguments")
        arguments = {str(k.arg): _literal(k.value) for k in call.keywords if k.arg is not None}
        calls.append({"name": _call_name(call.func), "arguments": arguments})
    if not calls:
        raise CallShapeError("expected function calls such as name(arg=value)")
    return calls


def json_or_python_calls(text: str) -> list[Call]:
    """JSON when the text starts like JSON, Python call syntax otherwise (Gemma, Llama)."""
    if text.strip()[:1] in ("{", "["):
        return json_calls(text)
    return python_calls(text)
