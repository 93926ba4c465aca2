"""JSON-schema regex keywords with a deadline: a client's pattern never holds the worker.

Tool-call arguments are checked against the client's schema on the worker's only thread, so
a catastrophically backtracking ``pattern`` would stall every slot. The regex module's
``timeout=`` stops a search; one deadline covers all the searches of one check.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema
import jsonschema.validators
import regex

__all__ = [
    "PATTERN_BUDGET_SECONDS",
    "PatternTimeout",
    "pattern_deadline",
    "safe_validator_class",
    "uses_unbounded_regex",
]

#: Total time the regexes of one tool-call check may take (all `pattern`s and
#: `patternProperties` together). A client's pattern can backtrack catastrophically; this bounds
#: how long it holds the worker's only thread (the other slots wait for it).
PATTERN_BUDGET_SECONDS = 0.1

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "paddler_pattern_deadline", default=None
)


class PatternTimeout(Exception):
    """A schema regex ran past the budget; the tool call cannot be checked."""

    def __init__(self, pattern: str) -> None:
        super().__init__(pattern)
        self.pattern = pattern


def _search(pattern: str, text: str) -> bool:
    """`re.search` semantics, with the regex module's timeout bounded by the check's deadline."""
    deadline = _deadline.get()
    now = time.monotonic()
    remaining = PATTERN_BUDGET_SECONDS if deadline is None else deadline - now
    if remaining <= 0:
        raise PatternTimeout(pattern)
    try:
        return regex.search(pattern, text, timeout=remaining) is not None
    except TimeoutError as exc:
        raise PatternTimeout(pattern) from exc


def _pattern(
    validator: Any, pattern: str, instance: Any, schema: Mapping[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: Mapping[str, Any], instance: Any, schema: Mapping[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = [
        key
        for key in instance
        if key not in properties and not any(_search(p, key) for p in patterns)
    ]
    if validator.is_type(additional, "object"):
        for key in extras:
            yield from validator.descend(instance[key], additional, path=key)
    elif not additional and extras:
        listed = ", ".join(repr(key) for key in sorted(extras))
        if patterns:
            yield jsonschema.ValidationError(
                f"{listed} do not match any of the regexes: {', '.join(map(repr, patterns))}"
            )
        else:
            yield jsonschema.ValidationError(
                f"Additional properties are not allowed ({listed} unexpected)"
            )


#: The keywords that run a client's regex, replaced by deadline-bounded versions.
_SAFE_KEYWORDS = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
}


def uses_unbounded_regex(schema: Any) -> bool:
    """``unevaluatedProperties`` next to ``patternProperties``: jsonschema would run that
    regex with the stdlib ``re`` (no deadline), so such schemas are refused."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "unevaluatedProperties" in node and "patternProperties" in node:
                return True
            stack.extend(v for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, dict | list))
    return False


@contextlib.contextmanager
def pattern_deadline(seconds: float = PATTERN_BUDGET_SECONDS) -> Iterator[None]:
    """Every schema regex run inside the block shares one budget of ``seconds``."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def safe_validator_class(cls: Any) -> Any:
    """``cls`` with the regex keywords replaced by their deadline-bounded versions."""
    return jsonschema.validators.extend(cls, _SAFE_KEYWORDS)
