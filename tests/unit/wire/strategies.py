"""Hypothesis strategies that build any wire class from its attrs field types."""

from __future__ import annotations

import enum
import types
import typing
from typing import Any

import attrs
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from paddler.wire import F32, RmsNorm, ValidatedParametersSchema
from paddler.wire._markers import to_f32

# A fast profile: the wire suite runs on every commit of every contributor.
fast = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

text = st.text(st.characters(codec="utf-8"), max_size=12)
ints = st.integers(min_value=-(2**31), max_value=2**31 - 1)
f32s = st.floats(width=32, allow_nan=False, allow_infinity=False).map(to_f32)
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | ints | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=6,
)

_SPECIAL: dict[Any, st.SearchStrategy[Any]] = {
    # epsilon must be finite and above 0 (RmsNorm's validator)
    RmsNorm: st.builds(
        RmsNorm,
        st.floats(min_value=0.0, exclude_min=True, allow_infinity=False, width=32).map(to_f32),
    ),
    ValidatedParametersSchema: st.builds(
        ValidatedParametersSchema,
        type=st.just("object"),
        properties=st.none() | st.dictionaries(text, json_values, max_size=3),
        required=st.none() | st.lists(text, max_size=3).map(tuple),
        additional_properties=st.none() | st.booleans(),
    ),
}


def for_type(tp: Any) -> st.SearchStrategy[Any]:
    """A strategy for any type that appears in a wire class."""
    if tp in _SPECIAL:
        return _SPECIAL[tp]
    if tp == F32:
        return f32s
    if tp is Any:
        return json_values
    if tp is str:
        return text
    if tp is bool:
        return st.booleans()
    if tp is int:
        return ints
    if tp is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return st.sampled_from(list(tp))
    if isinstance(tp, type) and attrs.has(tp):
        return attrs_instances(tp)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([for_type(arg) for arg in args])
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return st.lists(for_type(args[0]), max_size=3).map(tuple)
    if origin is dict:
        return st.dictionaries(for_type(args[0]), for_type(args[1]), max_size=3)
    if tp is type(None):
        return st.none()
    raise NotImplementedError(f"no strategy for {tp!r}")


def attrs_instances(cls: type) -> st.SearchStrategy[Any]:
    """Instances of an attrs class with every field drawn (defaults too)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = attrs.fields(cls)
    kwargs = {a.name: st.deferred(lambda tp=hints[a.name]: for_type(tp)) for a in fields}
    positional = [a.name for a in fields if not a.kw_only]

    def build(values: dict[str, Any]) -> Any:
        args = [values.pop(name) for name in positional]
        return cls(*args, **values)

    return st.fixed_dictionaries(kwargs).map(build)
