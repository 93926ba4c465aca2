"""Hypothesis strategies for bodies the OpenAPI documents cannot describe.

Mostly well-shaped messages (spec §2.2, §3) with any part swapped for arbitrary JSON, so
that the fuzz reaches deep checks and still tries every wrong type in every place.
"""

from __future__ import annotations

import json
import math
import re
import struct
from typing import Any

from hypothesis import strategies as st

from paddler.balancer._desired_state import INT32_MAX, PARAMETER_RANGES

__all__ = [
    "bad_desired_state",
    "inference_socket_frames",
    "json_values",
]

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually ``valid``, sometimes any JSON value in its place."""
    return st.one_of(valid, valid, valid, json_values)


short_text = st.text(max_size=30)
part = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": maybe(short_text)}),
    st.fixed_dictionaries(
        {
            "type": st.just("image_url"),
            "image_url": maybe(st.fixed_dictionaries({"url": short_text})),
        }
    ),
)
message = st.fixed_dictionaries(
    {
        "role": maybe(st.sampled_from(["system", "user", "assistant", "tool"])),
        "content": maybe(short_text | st.lists(part, max_size=2)),
    }
)
grammar = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {"type": st.just("gbnf"), "grammar": maybe(short_text), "root": maybe(short_text)}
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("json_schema"),
            "schema": maybe(st.builds(json.dumps, json_values) | short_text),
        }
    ),
)
tool = st.fixed_dictionaries(
    {
        "type": maybe(st.just("function")),
        "function": maybe(
            st.fixed_dictionaries(
                {"name": maybe(short_text)},
                optional={
                    "description": short_text,
                    "parameters": maybe(
                        st.fixed_dictionaries(
                            {"type": maybe(st.just("object"))},
                            optional={
                                "properties": st.dictionaries(short_text, json_values, max_size=2),
                                "required": st.lists(short_text, max_size=2),
                            },
                        )
                    ),
                },
            )
        ),
    }
)
max_tokens = maybe(st.integers(1, 8) | st.integers(-(2**40), 2**40))
conversation = st.fixed_dictionaries(
    {
        "add_generation_prompt": maybe(st.booleans()),
        "conversation_history": maybe(st.lists(message, max_size=3)),
        "enable_thinking": maybe(st.booleans()),
        "max_tokens": max_tokens,
    },
    optional={
        "grammar": grammar,
        "parse_tool_calls": maybe(st.booleans()),
        "tools": maybe(st.lists(tool, max_size=2)),
        "unknown_field": json_values,
    },
)
raw_prompt = st.fixed_dictionaries(
    {"raw_prompt": maybe(short_text), "max_tokens": max_tokens}, optional={"grammar": grammar}
)
request_id = st.text(max_size=16) | st.text(min_size=250, max_size=270)


@st.composite
def inference_socket_frames(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """A session's worth of frames: ``("request", (id, text))`` frames must each get a
    terminal or an ``Error`` for their id; the other kinds are ``("text" | "bytes", data)``."""
    frames: list[tuple[str, Any]] = []
    sent: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(
            st.sampled_from(["request", "request", "stop", "error", "json", "text", "bytes"])
        )
        if kind == "request":
            reuse = bool(sent) and draw(st.booleans())
            rid = draw(st.sampled_from(sent)) if reuse else draw(request_id)
            variant, body = draw(
                st.tuples(st.just("ContinueFromConversationHistory"), conversation)
                | st.tuples(st.just("ContinueFromRawPrompt"), raw_prompt)
            )
            frame = {"Request": {"id": rid, "request": {variant: body}}}
            frames.append(("request", (rid, json.dumps(frame))))
            sent.append(rid)
        elif kind == "stop":
            target = draw(st.sampled_from(sent) if sent else request_id)
            stop = {"Notification": {"StopRespondingTo": draw(maybe(st.just(target)))}}
            frames.append(("text", json.dumps(stop)))
        elif kind == "error":
            body = {"request_id": draw(maybe(request_id)), "error": draw(json_values)}
            frames.append(("text", json.dumps({"Error": body})))
        elif kind == "json":
            frames.append(("text", json.dumps(draw(json_values))))
        elif kind == "text":
            frames.append(("text", draw(st.text(max_size=40))))
        else:
            frames.append(("bytes", draw(st.binary(max_size=40))))
    return frames


WRONG_TYPES = st.one_of(st.lists(st.integers(), max_size=2), st.integers(2, 9), st.none())


def wrong_type(good: Any) -> st.SearchStrategy[Any]:
    """A value of another JSON type than ``good`` that could never be read as a valid one
    (no strings where a string is expected: "Mean" would be a real change of state)."""
    if isinstance(good, str):
        return WRONG_TYPES
    if isinstance(good, bool) or good is None:
        return WRONG_TYPES.filter(lambda v: v is not None) | st.text(max_size=5)
    return WRONG_TYPES.filter(lambda v: not isinstance(v, int)) | st.text(max_size=5)


def _as_f32(value: float) -> float:
    """``value`` rounded to a 32-bit float (infinite when it does not fit one)."""
    try:
        rounded: float = struct.unpack("<f", struct.pack("<f", value))[0]
    except OverflowError:
        return math.inf
    return rounded


@st.composite
def bad_desired_state(draw: st.DrawFn, good: dict[str, Any]) -> bytes:
    """A PUT body the balancer must refuse with a 4xx (and leave the state alone)."""
    state = json.loads(json.dumps(good))
    params = state["inference_parameters"]
    how = draw(
        st.sampled_from(
            ["range", "wrong_type", "missing", "unknown", "model", "not_an_object", "raw"]
        )
    )
    if how == "range":
        name = draw(st.sampled_from(sorted(PARAMETER_RANGES)))
        low, high = PARAMETER_RANGES[name]
        if isinstance(low, int) and isinstance(high, int):
            value: Any = draw(st.integers(max_value=low - 1) | st.integers(high + 1, 2**70))
        else:  # out of range as the f32 the wire keeps: 100.00000000000003 is 100.0 there
            finite = {"allow_nan": False, "allow_infinity": False}
            value = draw(
                (
                    st.floats(max_value=low, exclude_max=True, **finite)
                    | st.floats(min_value=high, exclude_min=True, **finite)
                ).filter(lambda v: not low <= _as_f32(v) <= high)
            )
        params[name] = value
    elif how == "wrong_type":
        target = params if draw(st.booleans()) else state
        key = draw(st.sampled_from(sorted(target)))
        target[key] = draw(wrong_type(target[key]))
    elif how == "missing":
        target = state if draw(st.booleans()) else params
        del target[draw(st.sampled_from(sorted(target)))]
    elif how == "unknown":
        target = state if draw(st.booleans()) else params
        target["x_" + draw(st.text(max_size=8))] = draw(json_values)
    elif how == "model":
        key = draw(st.sampled_from(["model", "multimodal_projection"]))
        tags = st.sampled_from(["LocalToAgent", "Url", "HuggingFace", "None"])
        state[key] = draw(
            json_values.filter(lambda v: not isinstance(v, str | dict))
            | st.text(max_size=8).filter(lambda v: v != "None")
            | st.builds(lambda k, v: {k: v}, tags, WRONG_TYPES)
        )
    elif how == "not_an_object":
        return json.dumps(draw(json_values.filter(lambda v: not isinstance(v, dict)))).encode()
    else:
        text = json.dumps(state)
        return draw(
            st.sampled_from(
                [
                    text.replace('"temperature": 0.0', '"temperature": NaN'),
                    text.replace('"top_p": 1.0', '"top_p": 1e999'),
                    re.sub(r'"context_size": \d+', f'"context_size": {INT32_MAX + 1}', text),
                    text[: len(text) // 2],
                    "[" * 10000 + "]" * 10000,
                ]
            )
        ).encode()
    return json.dumps(state).encode()
