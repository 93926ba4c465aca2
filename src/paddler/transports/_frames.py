"""Text frames to wire objects and back, with fast paths for the frame a busy link carries most.

Nearly every frame on a busy agent socket or inference socket is one generated token:
``{"Response":{"generated_by":null,"request_id":"..","response":{"GeneratedToken":
{"ContentToken":".."}}}}`` (an agent's ``AgentResponse`` and the client's ``ResponseEnvelope``
have the same shape). It carries one or two strings, and going through the cattrs unions costs
several times the JSON work itself. So ``dumps_frame`` writes that shape by hand and
``loads_frame`` reads an agent's token frame by hand. Anything else (and any token frame not
exactly this shape) takes the converter, so validation and error messages are unchanged; the
text written is byte-identical to ``converter.dumps`` (the same ``json.dumps`` settings).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from paddler.wire import (
    AgentResponse,
    AgentToBalancerMessage,
    ContentToken,
    ReasoningToken,
    ResponseEnvelope,
    ToolCallToken,
    UndeterminableToken,
    WireError,
    converter,
    parse_json,
)

__all__ = ["BATCH_BYTES", "dumps_batches", "dumps_frame", "loads_batch", "loads_frame"]

_TOKEN_CLASSES: dict[str, Any] = {
    "ContentToken": ContentToken,
    "ReasoningToken": ReasoningToken,
    "ToolCallToken": ToolCallToken,
    "UndeterminableToken": UndeterminableToken,
}
_TOKEN_NAMES = {cls: name for name, cls in _TOKEN_CLASSES.items()}
_RESPONSE_KEYS = frozenset(("generated_by", "request_id", "response"))
_TOKEN_ENVELOPES = (AgentResponse, ResponseEnvelope)
_encode_string = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode


def _token_response(value: Any) -> AgentResponse | None:
    """The ``AgentResponse`` for an exact single-token frame, else None (use the converter)."""
    if type(value) is not dict or len(value) != 1:
        return None
    inner = value.get("Response")
    if type(inner) is not dict or not _RESPONSE_KEYS.issuperset(inner):
        return None
    request_id = inner.get("request_id")
    response = inner.get("response")
    generated_by = inner.get("generated_by")
    if type(request_id) is not str or type(response) is not dict or len(response) != 1:
        return None
    if generated_by is not None and type(generated_by) is not str:
        return None
    token = response.get("GeneratedToken")
    if type(token) is not dict or len(token) != 1:
        return None
    ((name, text),) = token.items()
    cls = _TOKEN_CLASSES.get(name)
    if cls is None or type(text) is not str:
        return None
    return AgentResponse(generated_by=generated_by, request_id=request_id, response=cls(text))


def loads_frame(text: str, cls: Any) -> Any:
    """``converter.loads(text, cls)``, faster for an agent's single-token frames."""
    if cls is AgentToBalancerMessage:
        try:
            # Only exact string-only shapes pass, so NaN or infinity never takes this path.
            fast = _token_response(json.loads(text))
        except (ValueError, RecursionError):
            fast = None
        if fast is not None:
            return fast
    return converter.loads(text, cls)  # validates, names the problems


def loads_batch(text: str, cls: Any) -> list[Any]:
    """The messages of a ``frame_batches`` frame (a JSON array of frames), in order.

    Raises ``WireError`` (the whole frame is then skipped) when it is not an array or an
    element is not a ``cls``. Token elements take the fast path of ``loads_frame`` (strings
    only); any other element (a ``Done``, a status) goes through the converter's checked
    parse, NaN and depth included.
    """
    try:
        values = json.loads(text)
    except (ValueError, RecursionError):
        values = parse_json(text)  # raises the WireError that names the problem
    if type(values) is not list:
        raise WireError(["$: a batch frame is a JSON array of messages"])
    items: list[Any] = []
    for index, value in enumerate(values):
        item = _token_response(value)
        if item is None:
            try:
                item = converter.loads(json.dumps(value), cls)
            except WireError as exc:
                raise WireError([f"$[{index}]{p[1:]}" for p in exc.problems]) from exc
        items.append(item)
    return items


#: A batch frame stays below this (the balancer's frame limit is 16 MiB by default and may
#: be set lower): a message that is larger on its own still goes alone, as it would unbatched.
BATCH_BYTES = 256 * 1024


def dumps_batches(items: Sequence[Any], cls: Any) -> list[str]:
    """The frames that carry ``items`` in order: ``frame_batches`` arrays of at most
    ``BATCH_BYTES`` (counted in characters), and a message that fills one alone as its own
    frame, the shape Paddler's peers read."""
    frames: list[str] = []
    group: list[str] = []
    size = 0
    for item in items:
        text = dumps_frame(item, cls)
        if group and size + len(text) + 1 > BATCH_BYTES:
            frames.append(_joined(group))
            group, size = [], 0
        group.append(text)
        size += len(text) + 1
    if group:
        frames.append(_joined(group))
    return frames


def _joined(texts: list[str]) -> str:
    return texts[0] if len(texts) == 1 else "[" + ",".join(texts) + "]"


def dumps_frame(item: Any, cls: Any) -> str:
    """``converter.dumps(item, cls)``, faster for a response holding one token."""
    if type(item) in _TOKEN_ENVELOPES:
        token: Any = item.response
        name = _TOKEN_NAMES.get(type(token))
        if name is not None:
            generated_by = item.generated_by
            return (
                '{"Response":{"generated_by":'
                + ("null" if generated_by is None else _encode_string(generated_by))
                + ',"request_id":'
                + _encode_string(item.request_id)
                + ',"response":{"GeneratedToken":{"'
                + name
                + '":'
                + _encode_string(token.text)
                + "}}}}"
            )
    return converter.dumps(item, cls)
