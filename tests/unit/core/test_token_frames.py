"""The single-token fast paths read and write exactly what the converter does."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paddler.transports import TextFrameStream
from paddler.transports._frames import dumps_frame, loads_frame
from paddler.wire import (
    AgentResponse,
    AgentStateApplicationStatus,
    AgentToBalancerMessage,
    BalancerToAgentMessage,
    ContentToken,
    Done,
    ErrorBody,
    ErrorEnvelope,
    InferenceClientMessage,
    ReasoningToken,
    ResponseEnvelope,
    SlotAggregatedStatusSnapshot,
    TokenUsage,
    ToolCallToken,
    UndeterminableToken,
    UpdateAgentStatus,
    WireError,
    converter,
)

TOKENS = (ContentToken, ReasoningToken, ToolCallToken, UndeterminableToken)
USAGE = TokenUsage(
    prompt_tokens=1,
    cached_prompt_tokens=0,
    input_image_tokens=0,
    input_audio_tokens=0,
    content_tokens=2,
    reasoning_tokens=0,
    tool_call_tokens=0,
    undeterminable_tokens=0,
)


@given(
    kind=st.sampled_from(TOKENS),
    text=st.text(),
    request_id=st.text(),
    generated_by=st.none() | st.text(),
)
def test_token_frames_match_the_converter(
    kind: type, text: str, request_id: str, generated_by: str | None
) -> None:
    """Any token text (quotes, control characters, non-ASCII) round-trips byte for byte, on
    the agent socket (both ways) and towards inference clients."""
    token = kind(text)
    agent = AgentResponse(generated_by=generated_by, request_id=request_id, response=token)
    frame = converter.dumps(agent, AgentToBalancerMessage)
    assert dumps_frame(agent, AgentToBalancerMessage) == frame
    assert loads_frame(frame, AgentToBalancerMessage) == converter.loads(
        frame, AgentToBalancerMessage
    )
    envelope = ResponseEnvelope(generated_by=generated_by, request_id=request_id, response=token)
    assert dumps_frame(envelope, InferenceClientMessage) == converter.dumps(
        envelope, InferenceClientMessage
    )


def test_other_messages_take_the_converter() -> None:
    """Terminals and errors are written as before."""
    for item in (
        ResponseEnvelope(generated_by="a", request_id="r", response=Done(usage=USAGE)),
        ErrorEnvelope(request_id="r", error=ErrorBody(code=502, description="gone")),
    ):
        assert dumps_frame(item, InferenceClientMessage) == converter.dumps(
            item, InferenceClientMessage
        )
    done = AgentResponse(request_id="r", response=Done(usage=USAGE))
    frame = converter.dumps(done, AgentToBalancerMessage)
    assert dumps_frame(done, AgentToBalancerMessage) == frame
    assert loads_frame(frame, AgentToBalancerMessage) == done


@pytest.mark.parametrize(
    "frame",
    [
        '{"Response":{"request_id":"r","extra":1,"response":{"GeneratedToken":{"ContentToken":"x"}}}}',
        '{"Response":{"request_id":5,"response":{"GeneratedToken":{"ContentToken":"x"}}}}',
        '{"Response":{"request_id":"r","response":{"GeneratedToken":{"ContentToken":7}}}}',
        '{"Response":{"request_id":"r","response":{"GeneratedToken":{"NoSuchToken":"x"}}}}',
        "not json",
    ],
)
def test_malformed_token_frames_are_rejected_like_the_converter(frame: str) -> None:
    """A near-miss frame is not accepted by the fast path; the converter reports it."""
    with pytest.raises(WireError):
        loads_frame(frame, AgentToBalancerMessage)


def _status(slots: int, version: int) -> UpdateAgentStatus:
    return UpdateAgentStatus(
        slot_aggregated_status_snapshot=SlotAggregatedStatusSnapshot(
            desired_slots_total=slots,
            slots_total=slots,
            slots_processing=0,
            download_current=0,
            download_total=0,
            download_indeterminate=False,
            issues=(),
            state_application_status=AgentStateApplicationStatus.APPLIED,
            uses_chat_template_override=False,
            version=version,
        )
    )


@pytest.mark.anyio
async def test_repeated_status_heartbeats_read_as_the_status_they_repeat() -> None:
    """A balancer reading an agent's heartbeats sees each status as sent, repeated or not
    (a repeat is decoded once), and a changed status as the change."""
    first, changed = _status(4, 1), _status(3, 2)
    frames = [converter.dumps(m, AgentToBalancerMessage) for m in (first, first, changed, first)]
    pending = iter([*frames, None])

    async def receive_text() -> str | None:
        return next(pending)

    async def ignore(*_: Any) -> None:
        return None

    stream = TextFrameStream(
        send_text=ignore,
        receive_text=receive_text,
        close=ignore,
        receive_type=AgentToBalancerMessage,
        send_type=BalancerToAgentMessage,
    )
    assert [await stream.receive() for _ in frames] == [first, first, changed, first]
