"""Tool-call validation runs clients' regexes with a deadline (no catastrophic backtracking)."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from paddler.engine._schema_regex import safe_validator_class
from paddler.engine._tool_calls import ToolSchemaError, compile_tool_validators, parse_tool_calls
from paddler.wire import (
    Function,
    Tool,
    ToolCallParsed,
    ToolCallValidationFailed,
    ValidatedParametersSchema,
    ValidJson,
)

EVIL = "^(a|a)*$"  # exponential on "aaaa...b" (in re and in the regex module alike)
NEAR_MISS = "a" * 40 + "b"


def tool(properties: dict[str, object], **extra: object) -> Tool:
    return Tool(
        function=Function(
            name="f",
            description="",
            parameters=ValidatedParametersSchema(type="object", properties=properties, **extra),  # type: ignore[arg-type]
        )
    )


def call(arguments: dict[str, object]) -> str:
    return json.dumps({"name": "f", "arguments": arguments})


def test_catastrophic_pattern_is_cut_off_as_a_validation_failure():
    """The check gives up within its budget and says which pattern it could not finish."""
    validators = compile_tool_validators([tool({"s": {"type": "string", "pattern": EVIL}})])
    result = parse_tool_calls(call({"s": NEAR_MISS}), validators)
    assert isinstance(result, ToolCallValidationFailed)
    (message,) = result.messages
    assert "could not be checked" in message
    assert EVIL in message


def test_catastrophic_pattern_property_key_is_cut_off():
    """patternProperties (and additionalProperties, which consults it) use the same deadline."""
    cls = safe_validator_class(Draft202012Validator)
    lenient = cls({"type": "object", "patternProperties": {EVIL: {"type": "integer"}}})
    strict = cls({"type": "object", "patternProperties": {EVIL: {}}, "additionalProperties": False})
    for validator in (lenient, strict):
        result = parse_tool_calls(call({NEAR_MISS: 1}), {"f": validator})
        assert isinstance(result, ToolCallValidationFailed)
        assert "could not be checked" in result.messages[0]


def test_ordinary_patterns_still_validate():
    """A matching argument passes; a non-matching one names the pattern, as before."""
    validators = compile_tool_validators(
        [tool({"code": {"type": "string", "pattern": "^[A-Z]{3}$"}})]
    )
    ok = parse_tool_calls(call({"code": "PAR"}), validators)
    assert isinstance(ok, ToolCallParsed)
    assert ok.calls[0].arguments == ValidJson({"code": "PAR"})
    bad = parse_tool_calls(call({"code": "paris"}), validators)
    assert isinstance(bad, ToolCallValidationFailed)
    assert "does not match" in bad.messages[0]


def test_pattern_properties_and_additional_properties_keep_their_meaning():
    """Keys matched by a pattern are not additional; others are refused by name."""
    cls = safe_validator_class(Draft202012Validator)
    validator = cls(
        {
            "type": "object",
            "properties": {"id": {"type": "integer"}},
            "patternProperties": {"^x-": {"type": "string"}},
            "additionalProperties": False,
        }
    )
    assert isinstance(
        parse_tool_calls(call({"id": 1, "x-a": "s"}), {"f": validator}), ToolCallParsed
    )
    wrong_type = parse_tool_calls(call({"x-a": 5}), {"f": validator})
    assert isinstance(wrong_type, ToolCallValidationFailed)
    extra = parse_tool_calls(call({"other": 1}), {"f": validator})
    assert isinstance(extra, ToolCallValidationFailed)
    assert "'other'" in extra.messages[0]


def test_unevaluated_properties_with_pattern_properties_is_refused():
    """jsonschema would run that regex with the stdlib re: such a schema is refused up front."""
    bad = Tool(
        function=Function(
            name="f",
            description="",
            parameters=ValidatedParametersSchema(
                type="object",
                properties={
                    "inner": {
                        "type": "object",
                        "patternProperties": {"^a": {}},
                        "unevaluatedProperties": False,
                    }
                },
            ),
        )
    )
    with pytest.raises(ToolSchemaError, match="unevaluatedProperties"):
        compile_tool_validators([bad])
