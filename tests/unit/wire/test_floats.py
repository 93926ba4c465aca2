"""``f32`` fields are written as Rust writes an ``f32``: the shortest round-tripping decimal."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from paddler import wire
from paddler.wire import converter

from .strategies import fast


def _embedding(values: tuple[float, ...]) -> wire.Embedding:
    return wire.Embedding(
        embedding=values,
        normalization_method=wire.L2(),
        pooling_type=wire.PoolingType.MEAN,
        source_document_id="d",
    )


def test_float32_value_written_short() -> None:
    """A numpy ``float32`` widened to double (0.800000011920929) is written as ``0.8``."""
    value = float(np.float32(0.8))
    params = wire.InferenceParameters(temperature=value)
    assert json.loads(converter.dumps(params))["temperature"] == 0.8
    assert '"temperature":0.8,' in converter.dumps(params)


def test_embedding_vector_written_short() -> None:
    """Every value of an embedding vector is written as the shortest f32 decimal."""
    vector = tuple(np.array([0.1, -0.3, 1e-6], dtype=np.float32).tolist())
    text = converter.dumps(_embedding(vector), wire.Embedding)
    assert '"embedding":[0.1,-0.3,1e-06]' in text


def test_read_long_decimal_normalised() -> None:
    """A long decimal read into an f32 field is rounded to its f32 value's short form."""
    document = json.loads(converter.dumps(wire.InferenceParameters()))
    document["top_p"] = 0.800000011920929
    assert converter.loads(json.dumps(document), wire.InferenceParameters).top_p == 0.8


def test_integer_accepted_for_float() -> None:
    """A JSON integer is a valid f32 (serde accepts ``1`` for ``1.0``)."""
    document = json.loads(converter.dumps(wire.InferenceParameters()))
    document["penalty_repeat"] = 1
    assert converter.loads(json.dumps(document), wire.InferenceParameters).penalty_repeat == 1.0


def test_embedding_vector_rejects_strings() -> None:
    """A non-number in an embedding vector is rejected."""
    text = json.dumps(
        json.loads(converter.dumps(_embedding((0.5,)), wire.Embedding)) | {"embedding": [0.5, "x"]}
    )
    try:
        converter.loads(text, wire.Embedding)
    except wire.WireError as error:
        assert error.problems == ("$.embedding: invalid value at index 1, expected float",)
    else:
        raise AssertionError("expected WireError")


@fast
@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_any_f32_survives_a_trip(value: float) -> None:
    """Whatever f32 we write, reading it back and narrowing to f32 gives the same f32."""
    text = converter.dumps(_embedding((value,)), wire.Embedding)
    (read,) = converter.loads(text, wire.Embedding).embedding
    assert np.float32(read) == np.float32(value)
    assert converter.dumps(converter.loads(text, wire.Embedding), wire.Embedding) == text


def test_nan_is_not_written() -> None:
    """NaN has no JSON form; writing it fails instead of producing invalid JSON."""
    with pytest.raises(ValueError, match="JSON compliant"):
        converter.dumps(_embedding((float("nan"),)), wire.Embedding)


def test_loads_accepts_bytes() -> None:
    """``loads`` takes the raw bytes of a frame or body as well as text."""
    data = converter.dumps(wire.InferenceParameters()).encode()
    assert converter.loads(data, wire.InferenceParameters) == wire.InferenceParameters()
