"""Validate the tool calls a chat format read from a tool-call section (spec §6.6)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema
import jsonschema.exceptions
import jsonschema.validators

from paddler._ids import openai_id
from paddler.engine._formats import CallShapeError, CallSyntaxError, json_calls
from paddler.engine._formats._calls import CallReader
from paddler.engine._schema_regex import (
    PATTERN_BUDGET_SECONDS,
    PatternTimeout,
    pattern_deadline,
    safe_validator_class,
    uses_unbounded_regex,
)
from paddler.wire import (
    GeneratedTokenResult,
    InvalidJson,
    ParsedToolCall,
    Tool,
    ToolCallParsed,
    ToolCallParseFailed,
    ToolCallValidationFailed,
    UnrecognizedToolCallFormat,
    ValidJson,
    converter,
)


class ToolSchemaError(Exception):
    """A tool's `parameters` is not a valid JSON Schema."""


def tools_to_template(tools: Sequence[Tool] | None) -> list[dict[str, Any]]:
    """Tools as the chat template sees them (the wire JSON objects)."""
    return [converter.unstructure(tool) for tool in tools or ()]


def compile_tool_validators(
    tools: Sequence[Tool] | None,
) -> dict[str, jsonschema.protocols.Validator | None]:
    """One validator per tool name (None = any JSON object); raises `ToolSchemaError`."""
    validators: dict[str, jsonschema.protocols.Validator | None] = {}
    for tool in tools_to_template(tools):
        function = tool.get("function", {})
        name = str(function.get("name", ""))
        schema = function.get("parameters")
        if schema is None:
            validators[name] = None
            continue
        try:
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
        except jsonschema.exceptions.SchemaError as exc:
            raise ToolSchemaError(
                f"Tool '{name}' has an invalid parameters schema: {exc.message}"
            ) from exc
        if uses_unbounded_regex(schema):
            raise ToolSchemaError(
                f"Tool '{name}' has an unsupported parameters schema: patternProperties "
                "cannot be combined with unevaluatedProperties"
            )
        validators[name] = safe_validator_class(cls)(schema)
    return validators


def parse_tool_calls(
    text: str,
    validators: Mapping[str, jsonschema.protocols.Validator | None],
    read_calls: CallReader = json_calls,
) -> GeneratedTokenResult:
    """Turn the raw text of one tool-call section into the result the client sees.

    `read_calls` is the format's reader (Hermes JSON by default).
    """
    try:
        items = read_calls(text)
    except CallSyntaxError as exc:
        return ToolCallParseFailed(str(exc))
    except CallShapeError as exc:
        return UnrecognizedToolCallFormat(text=text, ffi_error_message=str(exc))
    with pattern_deadline():
        return _check_calls(items, validators)


def _check_calls(
    items: list[dict[str, Any]], validators: Mapping[str, jsonschema.protocols.Validator | None]
) -> GeneratedTokenResult:
    calls: list[ParsedToolCall] = []
    errors: list[str] = []
    for item in items:
        name: str = item["name"]
        raw = item.get("arguments", item.get("parameters", {}))
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError:
                calls.append(
                    ParsedToolCall(id=openai_id("call_"), name=name, arguments=InvalidJson(raw))
                )
                if name not in validators:
                    errors.append(f"Unknown tool '{name}'")
                continue
        if name not in validators:
            errors.append(f"Unknown tool '{name}'")
            continue
        validator = validators[name]
        if validator is None:
            if not isinstance(raw, dict):
                errors.append(f"Arguments of tool '{name}' must be a JSON object")
                continue
        else:
            try:
                error = jsonschema.exceptions.best_match(validator.iter_errors(raw))
            except PatternTimeout as exc:
                errors.append(
                    f"Tool '{name}' arguments could not be checked: the schema's pattern "
                    f"{exc.pattern!r} took longer than {PATTERN_BUDGET_SECONDS} s"
                )
                continue
            if error is not None:
                errors.append(f"Tool '{name}' arguments are invalid: {error.message}")
                continue
        calls.append(ParsedToolCall(id=openai_id("call_"), name=name, arguments=ValidJson(raw)))
    if errors:
        return ToolCallValidationFailed(tuple(errors))
    return ToolCallParsed(tuple(calls))
