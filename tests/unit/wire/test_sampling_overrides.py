"""Our ``sampling_overrides`` extension of the agent ``Request`` envelope."""

from __future__ import annotations

import pytest
from hypothesis import given

from paddler import wire
from paddler.wire import converter

from .strategies import fast, for_type

PARAMS = wire.ContinueFromRawPromptParams(raw_prompt="hi", max_tokens=3)
PADDLER_FRAME = (
    '{"Request":{"id":"r1","request":{"ContinueFromRawPrompt":'
    '{"raw_prompt":"hi","max_tokens":3,"grammar":null}}}}'
)


def test_request_without_overrides_is_paddlers_frame() -> None:
    """No overrides: the frame is exactly what Paddler's balancer sends (no extra key)."""
    request = wire.AgentRequest(id="r1", request=PARAMS)
    assert converter.dumps(request) == PADDLER_FRAME
    assert converter.loads(PADDLER_FRAME, wire.BalancerToAgentMessage) == request
    assert request.sampling_overrides is None


def test_overrides_are_written_beside_the_request_with_unset_fields_left_out() -> None:
    overrides = wire.SamplingOverrides(temperature=0.0, seed=7, stop=["\n", "END"])
    request = wire.AgentRequest(id="r1", request=PARAMS, sampling_overrides=overrides)
    text = converter.dumps(request)
    assert text == PADDLER_FRAME[:-2] + (
        ',"sampling_overrides":{"temperature":0.0,"seed":7,"stop":["\\n","END"]}}}'
    )
    loaded = converter.loads(text, wire.BalancerToAgentMessage)
    assert loaded == request and loaded.sampling_overrides.stop == ("\n", "END")


def test_null_overrides_read_as_none() -> None:
    text = PADDLER_FRAME[:-2] + ',"sampling_overrides":null}}'
    assert converter.loads(text, wire.BalancerToAgentMessage).sampling_overrides is None


@pytest.mark.parametrize(
    ("fragment", "problem"),
    [
        ('{"seed":"7"}', "$.Request.sampling_overrides.seed: invalid value for type"),
        ('{"temperature":true}', "$.Request.sampling_overrides.temperature: invalid value"),
        ('{"stop":"x","top_k":1}', "$.Request.sampling_overrides.top_k: extra field"),
    ],
)
def test_malformed_overrides_name_the_field(fragment: str, problem: str) -> None:
    text = PADDLER_FRAME[:-2] + ',"sampling_overrides":' + fragment + "}}"
    with pytest.raises(wire.WireError) as caught:
        converter.loads(text, wire.BalancerToAgentMessage)
    assert problem in str(caught.value)


@fast
@given(for_type(wire.SamplingOverrides))
def test_overrides_round_trip(overrides: wire.SamplingOverrides) -> None:
    request = wire.AgentRequest(
        id="r", request=wire.GetModelMetadata(), sampling_overrides=overrides
    )
    assert converter.loads(converter.dumps(request), wire.BalancerToAgentMessage) == request


def test_forced_tools_travel_as_a_list_of_names() -> None:
    """A forced tool call is the names alone; the agent's engine builds the grammar."""
    overrides = wire.SamplingOverrides(forced_tools=["get_weather"])
    request = wire.AgentRequest(id="r1", request=PARAMS, sampling_overrides=overrides)
    text = converter.dumps(request)
    assert text == PADDLER_FRAME[:-2] + ',"sampling_overrides":{"forced_tools":["get_weather"]}}}'
    assert converter.loads(text, wire.BalancerToAgentMessage) == request
