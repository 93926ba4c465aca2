"""Tool-call parsing and validation; embedding planning and normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from paddler.engine._embeddings import normalize, plan
from paddler.engine._tool_calls import ToolSchemaError, compile_tool_validators, parse_tool_calls
from paddler.wire import (
    L2,
    Function,
    InvalidJson,
    NoNormalization,
    RmsNorm,
    Tool,
    ToolCallParsed,
    ToolCallParseFailed,
    ToolCallValidationFailed,
    UnrecognizedToolCallFormat,
    ValidatedParametersSchema,
    ValidJson,
)

WEATHER = Tool(
    function=Function(
        name="get_weather",
        description="",
        parameters=ValidatedParametersSchema(
            type="object", properties={"city": {"type": "string"}}, required=("city",)
        ),
    )
)
ANYTHING = Tool(function=Function(name="anything", description=""))


@pytest.fixture
def validators():  # type: ignore[no-untyped-def]
    return compile_tool_validators((WEATHER, ANYTHING))


def test_valid_call_is_parsed(validators) -> None:  # type: ignore[no-untyped-def]
    result = parse_tool_calls(
        '\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n', validators
    )
    assert isinstance(result, ToolCallParsed)
    (call,) = result.calls
    assert (call.name, call.arguments) == ("get_weather", ValidJson({"city": "Oslo"}))
    assert call.id.startswith("call_")


def test_arguments_as_a_json_string_are_accepted(validators) -> None:  # type: ignore[no-untyped-def]
    result = parse_tool_calls('{"name": "anything", "arguments": "{\\"x\\": 1}"}', validators)
    assert isinstance(result, ToolCallParsed)
    assert result.calls[0].arguments == ValidJson({"x": 1})


def test_unparseable_argument_string_passes_through_as_invalid_json(validators) -> None:  # type: ignore[no-untyped-def]
    result = parse_tool_calls('{"name": "anything", "arguments": "not json"}', validators)
    assert isinstance(result, ToolCallParsed)
    assert result.calls[0].arguments == InvalidJson("not json")


def test_schema_violation_and_unknown_tool_fail_validation(validators) -> None:  # type: ignore[no-untyped-def]
    bad = parse_tool_calls('{"name": "get_weather", "arguments": {}}', validators)
    assert isinstance(bad, ToolCallValidationFailed)
    assert "city" in bad.messages[0]
    unknown = parse_tool_calls('{"name": "nope", "arguments": {}}', validators)
    assert unknown == ToolCallValidationFailed(("Unknown tool 'nope'",))


def test_not_json_and_other_shapes(validators) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(parse_tool_calls("{broken", validators), ToolCallParseFailed)
    assert isinstance(parse_tool_calls('{"tool": "x"}', validators), UnrecognizedToolCallFormat)


def test_invalid_tool_schema_is_rejected_up_front() -> None:
    broken = Tool(
        function=Function(
            name="f", description="", parameters=ValidatedParametersSchema(type="nope")
        )
    )
    with pytest.raises(ToolSchemaError, match="'f'"):
        compile_tool_validators((broken,))


def test_plan_respects_batch_tokens_and_sequences() -> None:
    assert plan([3, 3, 3, 3], n_batch=7, max_sequences=4) == [[0, 1], [2, 3]]
    assert plan([1, 1, 1], n_batch=100, max_sequences=2) == [[0, 1], [2]]
    assert plan([], n_batch=10, max_sequences=2) == []


def test_normalisations() -> None:
    v = np.array([3.0, 4.0], dtype=np.float32)
    assert np.allclose(normalize(v, L2()), [0.6, 0.8])
    assert np.allclose(normalize(np.zeros(2, dtype=np.float32), L2()), [0.0, 0.0])
    rms = normalize(v, RmsNorm(epsilon=1e-6))  # epsilon must be above 0 (wire validation)
    assert np.allclose(rms, v / np.sqrt(12.5 + 1e-6))
    assert normalize(v, NoNormalization()) is v
