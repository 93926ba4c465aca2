"""Markers the wire classes carry so the converter knows Rust's encoding of them.

* ``F32`` marks a float that is an ``f32`` in Rust: it is written with the shortest decimal
  that reads back as the same ``f32`` (``0.8``, not ``0.800000011920929``). Scalar ``F32``
  fields are also normalised when read; embedding vectors are read as given (for speed:
  Rust already writes them short).
* ``@newtype`` marks a one-field variant that serde writes as the bare value
  (``{"ContentToken":"Hi"}``) instead of an object (``{"Done":{"usage":...}}``).
* ``field(default=..., metadata=WIRE_REQUIRED)`` is a field with a Python default that is
  still required on the wire (serde has no default for it, e.g. all of ``InferenceParameters``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Annotated, TypeVar

import attrs
import numpy as np

__all__ = [
    "F32",
    "F32_MARK",
    "REQUIRED_KEY",
    "WIRE_REQUIRED",
    "is_newtype",
    "newtype",
    "to_f32",
    "to_f32_list",
]


class _F32Mark:
    def __repr__(self) -> str:
        return "F32"


F32_MARK = _F32Mark()
F32 = Annotated[float, F32_MARK]

REQUIRED_KEY = "paddler.wire.required"
WIRE_REQUIRED: Mapping[str, object] = MappingProxyType({REQUIRED_KEY: True})

T = TypeVar("T", bound=type)

_newtypes: set[type] = set()


def newtype(cl: T) -> T:
    """Mark a one-field variant class as a serde newtype variant (bare value on the wire)."""
    fields = attrs.fields(cl)
    if len(fields) != 1:
        raise TypeError(f"newtype variant {cl.__name__} must have exactly one field")
    _newtypes.add(cl)
    return cl


def is_newtype(cl: type) -> bool:
    return cl in _newtypes


def to_f32(value: float) -> float:
    """The double holding the shortest decimal that round-trips as this ``f32``."""
    return float(str(np.float32(value)))


def to_f32_list(values: Iterable[float]) -> list[float]:
    """``to_f32`` for a whole vector at once (embeddings have thousands of values)."""
    array = np.asarray(
        list(values) if not isinstance(values, np.ndarray) else values, dtype=np.float32
    )
    result: list[float] = array.astype(str).astype(np.float64).tolist()
    return result
