"""The per-request sampling fields every OpenAI endpoint shares → ``SamplingOverrides``."""

from __future__ import annotations

from collections.abc import Sequence

from paddler.wire import SamplingOverrides
from paddler_server.openai._errors import invalid
from paddler_server.openai._fields import Object, opt_float, opt_int

__all__ = ["read_max_tokens", "read_sampling", "read_stop"]

#: Paddler's default when a request names no limit.
DEFAULT_MAX_TOKENS = 2000
MAX_STOP_SEQUENCES = 4


def read_stop(body: Object) -> tuple[str, ...]:
    value = body.get("stop")
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise invalid("stop", "expected a non-empty string or an array of non-empty strings")
    if len(stops) > MAX_STOP_SEQUENCES:
        raise invalid("stop", f"at most {MAX_STOP_SEQUENCES} stop sequences are allowed")
    return tuple(stops)


def read_sampling(body: Object, *, forced_tools: Sequence[str] = ()) -> SamplingOverrides | None:
    """``temperature``, ``top_p``, ``seed``, penalties and ``stop``, with the tools a
    ``tool_choice`` forces (see ``forced_tools``); ``None`` when all are absent."""
    seed = opt_int(body, "seed", minimum=-(2**63), maximum=2**64 - 1)
    overrides = SamplingOverrides(
        temperature=opt_float(body, "temperature", minimum=0.0, maximum=2.0),
        top_p=opt_float(body, "top_p", minimum=0.0, maximum=1.0),
        # llama.cpp seeds are 32-bit; larger seeds are folded so equal seeds stay equal.
        seed=None if seed is None else seed % 2**32,
        presence_penalty=opt_float(body, "presence_penalty", minimum=-2.0, maximum=2.0),
        frequency_penalty=opt_float(body, "frequency_penalty", minimum=-2.0, maximum=2.0),
        stop=read_stop(body),
        forced_tools=forced_tools,
    )
    return None if overrides == SamplingOverrides() else overrides


def read_max_tokens(body: Object, *names: str) -> int:
    """The first of ``names`` that is set (e.g. ``max_completion_tokens``, ``max_tokens``)."""
    for name in names:
        value = opt_int(body, name, minimum=1)
        if value is not None:
            return value
    return DEFAULT_MAX_TOKENS
