"""Reading JSON text as strictly as serde_json does, so no input can break writing it back.

Python's ``json`` accepts ``NaN``, ``Infinity`` and numbers that overflow a double (``1e999``
becomes ``inf``); ``json.dumps(..., allow_nan=False)`` then refuses the value, so a document
that was accepted could later never be written (a stored state, a relayed request). It also
nests as deep as the interpreter's recursion limit and then raises ``RecursionError``, which
is not a ``ValueError``. ``parse_json`` rejects all of these with a ``WireError``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from ._errors import WireError

__all__ = ["DEFAULT_MAX_JSON_DEPTH", "F32_OVERFLOW", "fits_f32", "parse_json"]

#: serde_json's own nesting limit; every Paddler document is far shallower.
DEFAULT_MAX_JSON_DEPTH = 128

#: The smallest magnitude that rounds to infinity as an ``f32`` (2**128 minus half an ulp).
F32_OVERFLOW = 2.0**128 - 2.0**103

# A number literal that may overflow a double: an exponent of three or more digits, or a run
# of 300+ digits. Cheap to search for; only documents that match are parsed the slow way.
_MAYBE_HUGE_TEXT = re.compile(r"[eE][+]?0*[1-9][0-9]{2}|[0-9]{300}")
_MAYBE_HUGE_BYTES = re.compile(rb"[eE][+]?0*[1-9][0-9]{2}|[0-9]{300}")


def fits_f32(value: float) -> bool:
    """Whether ``value`` is finite and stays finite as an ``f32``."""
    return math.isfinite(value) and abs(value) < F32_OVERFLOW


class _NonFinite(Exception):
    """Raised inside ``json.loads``; turned into a ``WireError`` naming the value's path."""


def _reject_constant(name: str) -> Any:
    raise _NonFinite


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NonFinite
    return value


def _non_finite_problem(data: str | bytes | bytearray) -> str:
    """Where the first NaN or infinity is (parsing again, leniently: this is the error path)."""
    try:
        path = _find_non_finite(json.loads(data), "$")
    except (RecursionError, ValueError):
        path = None
    return f"{path or '$'}: NaN, Infinity and numbers out of range are not allowed"


def _find_non_finite(value: Any, path: str) -> str | None:
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    items: Any = ()
    if isinstance(value, dict):
        items = ((_key_path(path, str(key)), item) for key, item in value.items())
    elif isinstance(value, list):
        items = ((f"{path}[{index}]", item) for index, item in enumerate(value))
    for child_path, item in items:
        found = _find_non_finite(item, child_path)
        if found is not None:
            return found
    return None


def _key_path(path: str, key: str) -> str:
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{key!r}]"


def parse_json(data: str | bytes | bytearray, *, max_depth: int = DEFAULT_MAX_JSON_DEPTH) -> Any:
    """``json.loads`` that raises ``WireError`` for bad JSON, non-finite numbers and nesting
    deeper than ``max_depth`` (arrays and objects, the outermost one is depth 1)."""
    pattern = _MAYBE_HUGE_TEXT if isinstance(data, str) else _MAYBE_HUGE_BYTES
    maybe_huge = pattern.search(data) is not None  # type: ignore[arg-type]
    try:
        if maybe_huge:
            value = json.loads(data, parse_constant=_reject_constant, parse_float=_finite_float)
        else:
            value = json.loads(data, parse_constant=_reject_constant)
    except _NonFinite:
        raise WireError([_non_finite_problem(data)]) from None
    except RecursionError:
        raise WireError([_too_deep(max_depth)]) from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise WireError([f"invalid JSON: {exc}"]) from exc
    if _opening_brackets(data) > max_depth and _depth_exceeds(value, max_depth):
        raise WireError([_too_deep(max_depth)])
    return value


def _too_deep(max_depth: int) -> str:
    return f"$: JSON is nested too deeply (more than {max_depth} levels of arrays and objects)"


def _opening_brackets(data: str | bytes | bytearray) -> int:
    if isinstance(data, str):
        return data.count("[") + data.count("{")
    return data.count(b"[") + data.count(b"{")


def _depth_exceeds(value: Any, max_depth: int) -> bool:
    """Iterative walk (no recursion of our own); stops at the first container too deep."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if type(node) is dict else node if type(node) is list else None
        if children is None:
            continue
        if depth > max_depth:
            return True
        for child in children:
            if type(child) is dict or type(child) is list:
                stack.append((child, depth + 1))
    return False
