"""When a lost or failing agent's request goes to another agent (``docs/failover.md``).

Before the request's first token nothing reached the client, so the request is simply
dispatched again (a *retry*). After it, only a plain answer can go on elsewhere: the new agent
gets the text streamed so far as a ``continuation`` (a *resume*). The stream keeps the state;
these are the rules it asks.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from paddler.errors import InvalidRequest
from paddler.policies import RequestParams
from paddler.wire import (
    ContinueFromConversationHistoryParams,
    ContinueFromRawPromptParams,
    SamplerError,
    SamplingOverrides,
)

__all__ = [
    "MAX_RECOVERIES",
    "OPT_OUT_HEADER",
    "agent_failed",
    "http_request_header",
    "opted_out",
    "recovery_off",
    "resumable_request",
]

MAX_RECOVERIES = 2
"""Re-dispatches (retries and resumes together) one request may use. Each excludes the agent
it failed on, so a request that itself brings agents down (an input that crashes the engine)
costs at most three agents, and the client's wait is bounded; two unrelated agent losses
during one request are already rare."""

OPT_OUT_HEADER = "paddler-stream-recovery"
"""``Paddler-Stream-Recovery: off`` on a request (native or OpenAI API) keeps today's error
for it. Paddler's own clients never send it, so their requests are recovered by default."""

# What an agent answers, before any token, when the failure is the agent's and not the
# request's: another agent may well serve the request.
_AGENT_REFUSALS = (
    "There are no available sequence slots",  # its slots are full (a race with the count)
    "agent has no model loaded",  # it is swapping models
    "The engine worker ",  # its engine worker died; the agent restarts it
    "agent failed to serve the request",  # an unexpected error in the agent itself
)


def agent_failed(payload: object) -> bool:
    """Whether ``payload`` is a terminal that says the agent, not the request, failed."""
    return isinstance(payload, SamplerError) and payload.message.startswith(_AGENT_REFUSALS)


_HTTP_REQUEST_VALUE: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "paddler_stream_recovery_header", default=None
)
_OFF = ("off", "false", "0", "no")
_ON = ("on", "true", "1", "yes")


def opted_out(headers: Mapping[str, str]) -> bool:
    """The client asked for no recovery: ``Paddler-Stream-Recovery: off`` in the request's
    headers, or in those of the HTTP request whose handling this is (`http_request_header`).
    A value that is neither off nor on is `InvalidRequest` naming the header."""
    value = headers.get(OPT_OUT_HEADER)
    return recovery_off(value if value is not None else _HTTP_REQUEST_VALUE.get())


def recovery_off(value: str | None) -> bool:
    """What a ``Paddler-Stream-Recovery`` value asks for (none: recovery stays on)."""
    if value is None:
        return False
    word = value.strip().lower()
    if word in _OFF or word in _ON:
        return word in _OFF
    raise InvalidRequest(
        f"Paddler-Stream-Recovery header: {value!r} is neither off ({', '.join(_OFF)}) "
        f"nor on ({', '.join(_ON)})",
        field="Paddler-Stream-Recovery",
    )


@contextmanager
def http_request_header(value: str | None) -> Iterator[None]:
    """Requests started in this block (and in tasks spawned inside) read ``value`` as their
    ``Paddler-Stream-Recovery``: how a server whose handlers do not pass headers on (the
    OpenAI layer) applies the header."""
    token = _HTTP_REQUEST_VALUE.set(value)
    try:
        yield
    finally:
        _HTTP_REQUEST_VALUE.reset(token)


def resumable_request(params: RequestParams | None, overrides: SamplingOverrides | None) -> bool:
    """Whether the answer may resume on another agent: a plain generation, with no grammar
    and no tools (their state after the streamed text is not rebuilt by the new agent)."""
    if isinstance(params, ContinueFromConversationHistoryParams):
        if params.tools:
            return False
    elif not isinstance(params, ContinueFromRawPromptParams):
        return False
    if params.grammar is not None:
        return False
    return overrides is None or not overrides.forced_tools
