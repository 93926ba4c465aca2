"""No NaN, infinity or out-of-range number is ever read (issue 10 point 1), and deep JSON is a
``WireError`` (point 7): everything accepted can be written back."""

from __future__ import annotations

import json

import pytest

from paddler import wire
from paddler.wire import WireError, converter, parse_json


def _state_text(**parameters: object) -> str:
    document = json.loads(converter.dumps(wire.BalancerDesiredState()))
    document["inference_parameters"].update(parameters)
    return json.dumps(document)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999", "-1e400"])
def test_non_finite_literal_is_rejected_naming_its_path(literal: str) -> None:
    """The problem names the field, wherever the value is."""
    text = _state_text(temperature=123456).replace("123456", literal)
    with pytest.raises(WireError) as caught:
        converter.loads(text, wire.BalancerDesiredState)
    (problem,) = caught.value.problems
    assert problem.startswith("$.inference_parameters.temperature: ")


def test_non_finite_inside_free_json_is_rejected() -> None:
    """A tool's schema is free JSON: a bound of ``1e999`` there is rejected too."""
    text = '{"a": [1, {"maximum": 1e999}]}'
    with pytest.raises(WireError, match=r"^\$\.a\[1\]\.maximum: "):
        parse_json(text)


def test_f32_overflow_is_rejected() -> None:
    """``1e39`` is a finite double but infinite as an f32: rejected, not turned into inf."""
    with pytest.raises(WireError, match=r"inference_parameters\.temperature: .*f32"):
        converter.loads(_state_text(temperature=1e39), wire.BalancerDesiredState)


def test_largest_f32_is_accepted_and_written_back() -> None:
    """The boundary: the largest finite f32 reads and writes."""
    state = converter.loads(_state_text(temperature=3.4028234e38), wire.BalancerDesiredState)
    assert json.loads(converter.dumps(state))["inference_parameters"]["temperature"] > 3e38


def test_huge_integer_for_a_float_is_rejected() -> None:
    """An integer too big for a double is a clear problem, not an OverflowError."""
    text = _state_text(top_p=123456).replace("123456", "1" + "0" * 400)
    with pytest.raises(WireError, match=r"inference_parameters\.top_p: number out of range"):
        converter.loads(text, wire.BalancerDesiredState)


def test_embedding_vector_value_overflowing_f32_is_rejected() -> None:
    """A vector value that is infinite as an f32 would break writing the embedding out."""
    document = {
        "embedding": [0.5, 1e39],
        "normalization_method": "L2",
        "pooling_type": "Mean",
        "source_document_id": "d",
    }
    with pytest.raises(WireError, match="index 1"):
        converter.loads(json.dumps(document), wire.Embedding)


@pytest.mark.parametrize("epsilon", [-1.0, 0.0])
def test_rms_norm_epsilon_must_be_above_zero(epsilon: float) -> None:
    """A zero or negative epsilon gives NaN for a zero vector."""
    text = json.dumps(
        {"input_batch": [], "normalization_method": {"RmsNorm": {"epsilon": epsilon}}}
    )
    with pytest.raises(WireError, match="epsilon must be a finite number above 0"):
        converter.loads(text, wire.GenerateEmbeddingBatchParams)


@pytest.mark.parametrize("depth", [129, 100_000])
def test_deep_nesting_is_a_wire_error(depth: int) -> None:
    """Past the limit, and past Python's recursion limit, it is a WireError (not RecursionError)."""
    text = "[" * depth + "]" * depth
    with pytest.raises(WireError, match="nested too deeply"):
        converter.loads(text, wire.BalancerDesiredState)


def test_depth_limit_is_exact() -> None:
    """``max_depth`` levels are fine, one more is not."""
    assert parse_json("[[[]]]", max_depth=3) == [[[]]]
    with pytest.raises(WireError):
        parse_json("[[[[]]]]", max_depth=3)
    with pytest.raises(WireError):
        parse_json('{"a": {"b": {"c": {}}}}', max_depth=3)


def test_big_exponents_that_stay_finite_are_fine() -> None:
    """The slow path for long exponents still reads finite numbers exactly."""
    assert parse_json('[1e308, 1e-400, "e999"]') == [1e308, 0.0, "e999"]
