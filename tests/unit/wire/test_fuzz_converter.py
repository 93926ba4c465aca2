"""Fuzzing the converter (issue 10): any JSON in gives a typed value or a ``WireError``.

Nothing else may escape (no ``RecursionError``, ``OverflowError``, ``KeyError``...), and what is
accepted can always be written back: a NaN, an infinity or an f32 overflow is never accepted.
Example counts are bounded (the ``fast`` profile) so this runs in seconds in CI.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paddler import wire
from paddler.wire import WireError, converter

from .strategies import fast, for_type

TYPES = [
    wire.BalancerDesiredState,
    wire.InferenceServerMessage,
    wire.AgentToBalancerMessage,
    wire.BalancerToAgentMessage,
    wire.ContinueFromConversationHistoryParams,
    wire.GenerateEmbeddingBatchParams,
]

# Leaves that break naive readers: non-finite, f32 overflow, huge ints, wrong types, nesting.
nasty_leaves = st.one_of(
    st.sampled_from(
        [
            float("nan"),
            float("inf"),
            float("-inf"),
            1e39,
            -3.5e38,
            10**400,
            -(2**64),
            2**63,
            "",
            True,
            None,
            [],
            {},
        ]
    ),
    st.floats(),
    st.integers(),
    st.text(max_size=5),
)
nasty_json: st.SearchStrategy[Any] = st.recursive(
    nasty_leaves,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, *rest = path
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[head] = _replace(value[head], tuple(rest), new)
    return copy


def _dumps(value: Any) -> str:
    """JSON text the way a careless client writes it: NaN and Infinity literals included."""
    return json.dumps(value, allow_nan=True)


def _check(text: str, cls: Any) -> None:
    try:
        value = converter.loads(text, cls)
    except WireError as error:
        assert error.problems and all(isinstance(p, str) and p for p in error.problems)
        return
    written = converter.dumps(value, cls)  # must not raise: nothing unwritable got in
    reread = json.loads(written)
    assert _all_finite(reread)


def _all_finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_all_finite(item) for item in value.values())
    if isinstance(value, list):
        return all(_all_finite(item) for item in value)
    return True


@pytest.mark.parametrize("cls", TYPES, ids=lambda t: getattr(t, "__name__", str(t)))
def test_a_valid_document_with_one_leaf_replaced_reads_or_fails_cleanly(cls: Any) -> None:
    """Start from a valid document, replace any one node with something nasty."""

    @fast
    @given(for_type(cls), st.data())
    def run(original: Any, data: st.DataObject) -> None:
        document = converter.unstructure(original, cls)
        path = data.draw(st.sampled_from(_paths(document)))
        mutated = _replace(document, path, data.draw(nasty_json))
        _check(_dumps(mutated), cls)

    run()


@fast
@given(nasty_json, st.sampled_from(TYPES))
def test_any_json_reads_or_fails_cleanly(value: Any, cls: Any) -> None:
    """Arbitrary JSON values against any wire type."""
    _check(_dumps(value), cls)


@fast
@given(st.text(alphabet='[]{}":,0123456789.eE-+ NaInfity\\ul', max_size=60))
def test_any_text_reads_or_fails_cleanly(text: str) -> None:
    """Arbitrary text made of JSON's own characters."""
    _check(text, wire.InferenceServerMessage)


@fast
@given(st.integers(min_value=1, max_value=3000), st.sampled_from("[{"))
def test_any_depth_reads_or_fails_cleanly(depth: int, bracket: str) -> None:
    """Nesting of any depth, arrays or objects, is a value or a WireError."""
    text = "[" * depth + "]" * depth if bracket == "[" else '{"a":' * depth + "1" + "}" * depth
    _check(text, wire.BalancerDesiredState)
