"""Fuzzing the sans-I/O agent-socket protocol (issue 10): malformed, out-of-order and repeated
messages never raise out of it, and it never answers a request it did not receive.

Frames go through the real converter first, as they do on the socket: a frame that is not a
valid ``BalancerToAgentMessage`` is a ``WireError`` there (the transport logs and skips it);
whatever the converter accepts, and any object at all, is fed to ``receive``. Example counts are
bounded so this runs in seconds in CI.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from paddler.agent._protocol import AgentProtocol, RequestReceived
from paddler.wire import (
    AgentResponse,
    AgentStateApplicationStatus,
    BalancerToAgentMessage,
    ContentToken,
    Done,
    SlotAggregatedStatusSnapshot,
    TokenUsage,
    WireError,
    converter,
)

from .strategies import for_type, json_values

USAGE = TokenUsage(
    prompt_tokens=1,
    cached_prompt_tokens=0,
    input_image_tokens=0,
    input_audio_tokens=0,
    content_tokens=1,
    reasoning_tokens=0,
    tool_call_tokens=0,
    undeterminable_tokens=0,
)


def status(slots: int = 1) -> SlotAggregatedStatusSnapshot:
    return SlotAggregatedStatusSnapshot(
        desired_slots_total=1,
        slots_total=slots,
        slots_processing=0,
        download_current=0,
        download_total=0,
        download_indeterminate=False,
        issues=(),
        state_application_status=AgentStateApplicationStatus.APPLIED,
        uses_chat_template_override=False,
        version=1,
    )


FUZZ = settings(max_examples=150, deadline=None)

messages = for_type(BalancerToAgentMessage)
ids = st.sampled_from(["r1", "r2", "r3"])
steps = st.lists(
    st.one_of(
        st.tuples(st.just("message"), messages),
        st.tuples(st.just("frame"), json_values),
        st.tuples(st.just("object"), st.sampled_from([object(), None, 1, "Done", b"x"])),
        st.tuples(st.just("respond"), ids),
        st.tuples(st.just("finish"), ids),
        st.tuples(st.just("report"), st.integers(min_value=0, max_value=4)),
        st.tuples(st.just("drain"), st.just(0)),
        st.tuples(st.just("register"), st.just(1)),
        st.tuples(st.just("deregister"), st.just(None)),
    ),
    max_size=40,
)


@FUZZ
@given(steps)
def test_any_sequence_of_inputs_never_raises(sequence: list[tuple[str, Any]]) -> None:
    """Every input method, in any order, with any message; only documented errors escape."""
    protocol = AgentProtocol(name="fuzz")
    received: set[str] = set()
    for kind, value in sequence:
        if kind == "message":
            protocol.receive(value)
        elif kind == "frame":
            try:
                decoded = converter.loads(json.dumps(value), BalancerToAgentMessage)
            except WireError:
                continue  # the transport logs and skips it
            protocol.receive(decoded)
        elif kind == "object":
            protocol.receive(value)
        elif kind == "respond":
            protocol.respond(value, ContentToken("t"))
        elif kind == "finish":
            protocol.respond(value, Done(usage=USAGE))
        elif kind == "report":
            protocol.report(status(value))
        elif kind == "drain":
            protocol.begin_drain(status(0))
        elif kind == "register":
            try:
                protocol.register(status())
            except RuntimeError:  # documented: register() only once, first
                pass
        elif kind == "deregister":
            protocol.deregister()
        received |= {e.request_id for e in protocol.events() if isinstance(e, RequestReceived)}
        for out in protocol.outgoing():
            if isinstance(out, AgentResponse):
                assert out.request_id in received  # never answers what it did not get
            converter.dumps(out)  # whatever it sends can be written
    assert protocol.in_flight <= received
