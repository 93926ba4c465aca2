"""Reading an OpenAI JSON body field by field, so every 400 names the field at fault.

OpenAI bodies are loose JSON (unknown keys are common and ignored), so they are read by hand
rather than structured strictly; each reader checks one field's type and range.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from paddler.wire import WireError, parse_json
from paddler.wire._json import DEFAULT_MAX_JSON_DEPTH
from paddler_server.openai._errors import invalid

__all__ = [
    "child",
    "load_object",
    "opt_bool",
    "opt_float",
    "opt_int",
    "opt_list",
    "opt_object",
    "opt_str",
    "req_str",
]

Object = Mapping[str, Any]


def child(path: str, key: str | int) -> str:
    """``messages`` + 0 → ``messages[0]``; ``messages[0]`` + ``role`` → ``messages[0].role``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def load_object(raw: bytes, *, max_depth: int = DEFAULT_MAX_JSON_DEPTH) -> Object:
    """The request body as a JSON object, or a 400."""
    try:
        # Strict: no NaN/Infinity/1e999 (they could never be sent on to an agent) and bounded
        # nesting (deep JSON is a 400, not a RecursionError).
        data = parse_json(raw, max_depth=max_depth) if raw.strip() else None
    except WireError as exc:
        path, _, problem = exc.problems[0].partition(": ")
        if path.startswith(("$.", "$[")):
            raise invalid(path[2:] if path.startswith("$.") else path[1:], problem) from exc
        if path == "$":
            raise invalid("body", problem) from exc
        raise invalid("body", f"not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise invalid("body", "expected a JSON object")
    return data


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "null" if value is None else "number"
    )


def opt_str(obj: Object, key: str, path: str = "") -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise invalid(child(path, key), f"expected a string, got {_type_name(value)}")


def req_str(obj: Object, key: str, path: str = "") -> str:
    value = opt_str(obj, key, path)
    if value is None:
        raise invalid(child(path, key), "is required", code="missing_required_parameter")
    return value


def opt_bool(obj: Object, key: str, path: str = "") -> bool | None:
    value = obj.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise invalid(child(path, key), f"expected a boolean, got {_type_name(value)}")


def opt_int(
    obj: Object, key: str, path: str = "", *, minimum: int | None = None, maximum: int | None = None
) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid(child(path, key), f"expected an integer, got {_type_name(value)}")
    if minimum is not None and value < minimum:
        raise invalid(child(path, key), f"must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise invalid(child(path, key), f"must be at most {maximum}, got {value}")
    return value


def opt_float(
    obj: Object, key: str, path: str = "", *, minimum: float, maximum: float
) -> float | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise invalid(child(path, key), f"expected a number, got {_type_name(value)}")
    if not minimum <= value <= maximum:
        raise invalid(child(path, key), f"must be between {minimum} and {maximum}, got {value}")
    return float(value)


def opt_list(obj: Object, key: str, path: str = "") -> list[Any] | None:
    value = obj.get(key)
    if value is None or isinstance(value, list):
        return value
    raise invalid(child(path, key), f"expected an array, got {_type_name(value)}")


def opt_object(obj: Object, key: str, path: str = "") -> Object | None:
    value = obj.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise invalid(child(path, key), f"expected an object, got {_type_name(value)}")
