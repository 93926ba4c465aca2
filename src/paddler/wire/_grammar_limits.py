"""Limits on JSON schemas and GBNF grammars, checked before anything converts or parses them.

The JSON-schema converter expands every repetition bound into copies of a rule
(``{"type": "string", "maxLength": 10000000}`` becomes an 80 MB grammar), llama.cpp's GBNF
parser recurses once per nested group (about 20,000 levels overflow the worker's stack), and the
converter fetches any remote ``$ref`` it meets. These checks are linear in the input and need no
model, so the balancer runs them before dispatch (a 400 naming the field) and the engine runs
them again before conversion (a terminal ``GrammarSyntaxError``), for clients that reach an agent
some other way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from paddler.errors import PaddlerError

from ._requests import GbnfGrammar, GrammarConstraint, JsonSchemaGrammar

__all__ = [
    "MAX_GBNF_BYTES",
    "MAX_GBNF_NESTING",
    "MAX_GBNF_REPETITION",
    "MAX_SCHEMA_BYTES",
    "MAX_SCHEMA_DEPTH",
    "MAX_SCHEMA_REPETITION",
    "GrammarLimitError",
    "check_gbnf",
    "check_json_schema",
    "grammar_problem",
    "load_json_schema",
]

#: Largest JSON-schema text accepted (UTF-8 bytes).
MAX_SCHEMA_BYTES = 256 * 1024
#: Deepest nesting of objects and arrays in a schema.
MAX_SCHEMA_DEPTH = 64
#: Largest repetition bound in a schema (minLength, maxLength, minItems, maxItems,
#: minProperties, maxProperties, and nested ``{m,n}`` counts of a ``pattern`` multiplied).
#: llama.cpp refuses converted grammars past about 2,000 repeated rules anyway.
MAX_SCHEMA_REPETITION = 1000
#: Largest GBNF text accepted (UTF-8 bytes); well below the agent socket's message limit.
MAX_GBNF_BYTES = 1024 * 1024
#: Deepest nesting of parenthesised groups in a GBNF grammar (llama.cpp overflows near 20,000).
MAX_GBNF_NESTING = 2000
#: Largest ``{m,n}`` count in a GBNF grammar.
MAX_GBNF_REPETITION = 10_000

_REPETITION_KEYWORDS = (
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
)
#: Keywords whose values are data, not schemas: never read as schema keywords.
_DATA_KEYWORDS = frozenset({"enum", "const", "default", "examples"})
_COUNT = re.compile(r"\{\s*(\d+)\s*(?:,\s*(\d*)\s*)?\}")

Location = tuple[str | int, ...]


class GrammarLimitError(PaddlerError, ValueError):
    """A schema or grammar is past a limit; ``location`` is the path inside the schema."""

    code = 400

    def __init__(self, message: str, location: Location = ()) -> None:
        super().__init__(message)
        self.message = message
        self.location = location

    def __str__(self) -> str:
        if not self.location:
            return self.message
        return f"{json_pointer(self.location)}: {self.message}"


def json_pointer(location: Location) -> str:
    """``("properties", "name", "maxLength")`` → ``properties.name.maxLength``."""
    text = ""
    for key in location:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else key)
    return text


def load_json_schema(text: str) -> Any:
    """Parse a schema string within the limits; raises `GrammarLimitError` or `ValueError`."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_SCHEMA_BYTES:
        raise GrammarLimitError(
            f"the JSON schema is {size} bytes; at most {MAX_SCHEMA_BYTES} are accepted"
        )
    try:
        schema = json.loads(text)
    except RecursionError as exc:
        raise GrammarLimitError(
            f"the JSON schema is nested deeper than {MAX_SCHEMA_DEPTH} levels"
        ) from exc
    check_json_schema(schema)
    return schema


def check_json_schema(schema: Any) -> None:
    """Raise `GrammarLimitError` naming the first place where ``schema`` is past a limit."""
    for location, node in _walk(schema):
        if len(location) > MAX_SCHEMA_DEPTH:
            raise GrammarLimitError(
                f"the schema is nested deeper than {MAX_SCHEMA_DEPTH} levels", location
            )
        if not isinstance(node, dict):
            continue
        for keyword in _REPETITION_KEYWORDS:
            value = node.get(keyword)
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if not value <= MAX_SCHEMA_REPETITION:  # `not <=` also catches NaN
                raise GrammarLimitError(
                    f"{value} is larger than the limit of {MAX_SCHEMA_REPETITION}",
                    (*location, keyword),
                )
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            count = pattern_repetition(pattern)
            if count > MAX_SCHEMA_REPETITION:
                raise GrammarLimitError(
                    f"the pattern repeats {count} times (nested {{m,n}} counts multiplied); "
                    f"the limit is {MAX_SCHEMA_REPETITION}",
                    (*location, "pattern"),
                )
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            raise GrammarLimitError(
                f"only local references ('#/...') are supported, got {ref!r}",
                (*location, "$ref"),
            )


def _walk(schema: Any) -> Iterator[tuple[Location, Any]]:
    """Every container in the schema, depth first, without recursion (any depth is safe)."""
    stack: list[tuple[Location, Any]] = [((), schema)]
    while stack:
        location, node = stack.pop()
        yield location, node
        if len(location) > MAX_SCHEMA_DEPTH:
            continue  # the caller raises on it; do not descend into a bomb
        if isinstance(node, dict):
            for key, value in node.items():
                if key not in _DATA_KEYWORDS and isinstance(value, dict | list):
                    stack.append(((*location, str(key)), value))
        elif isinstance(node, list):
            for index, value in enumerate(node):
                if isinstance(value, dict | list):
                    stack.append(((*location, index), value))


def pattern_repetition(pattern: str) -> int:
    """The largest product of nested ``{m,n}`` counts in a regex (what the converter expands)."""
    # One frame per open group: [largest product inside it, value of the last atom].
    frames: list[list[int]] = [[1, 1]]
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        frame = frames[-1]
        if char == "\\":
            frame[1] = 1
            i += 2
            continue
        if char == "[":
            i = _class_end(pattern, i)
            frame[1] = 1
            continue
        if char == "(":
            frames.append([1, 1])
        elif char == ")" and len(frames) > 1:
            inner = frames.pop()[0]
            frames[-1][1] = inner
            frames[-1][0] = max(frames[-1][0], inner)
        elif char == "{" and (match := _COUNT.match(pattern, i)):
            low, high = match.group(1), match.group(2)
            count = int(high) if high else int(low)
            frame[1] *= max(count, 1)
            frame[0] = max(frame[0], frame[1])
            i = match.end()
            continue
        else:
            frame[1] = 1
        i += 1
    return max(frame[0] for frame in frames)


def _class_end(text: str, start: int) -> int:
    """Index just past the ``]`` that closes the character class opened at ``start``."""
    i = start + 1
    if i < len(text) and text[i] == "^":
        i += 1
    if i < len(text) and text[i] == "]":
        i += 1
    while i < len(text) and text[i] != "]":
        i += 2 if text[i] == "\\" else 1
    return i + 1


def check_gbnf(text: str) -> None:
    """Raise `GrammarLimitError` when a GBNF text is too large, too deep or repeats too much."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_GBNF_BYTES:
        raise GrammarLimitError(
            f"the grammar is {size} bytes; at most {MAX_GBNF_BYTES} are accepted"
        )
    depth = 0
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if char == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif char == "[":
            i = _class_end(text, i)
            continue
        elif char == "(":
            depth += 1
            if depth > MAX_GBNF_NESTING:
                raise GrammarLimitError(
                    f"the grammar nests groups deeper than {MAX_GBNF_NESTING} levels"
                )
        elif char == ")":
            depth = max(depth - 1, 0)
        elif char == "{" and (match := _COUNT.match(text, i)):
            count = max(int(match.group(1)), int(match.group(2) or 0))
            if count > MAX_GBNF_REPETITION:
                raise GrammarLimitError(
                    f"the grammar repeats {count} times ({match.group(0)}); "
                    f"the limit is {MAX_GBNF_REPETITION}"
                )
            i = match.end()
            continue
        i += 1


def grammar_problem(grammar: GrammarConstraint | None) -> tuple[str, str] | None:
    """``(field, message)`` when a request's grammar is past a limit, for a 400 before dispatch
    (``field`` is a JSON path such as ``$.grammar.schema.properties.bio.maxLength``)."""
    if grammar is None:
        return None
    try:
        if isinstance(grammar, GbnfGrammar):
            check_gbnf(grammar.grammar)
        elif isinstance(grammar, JsonSchemaGrammar):
            load_json_schema(grammar.schema)
    except GrammarLimitError as exc:
        inner = "grammar" if isinstance(grammar, GbnfGrammar) else "schema"
        where = json_pointer(exc.location)
        field = f"$.grammar.{inner}" + (
            f".{where}" if where and not where.startswith("[") else where
        )
        return field, exc.message
    except ValueError as exc:
        return "$.grammar.schema", f"not valid JSON ({exc})"
    return None
