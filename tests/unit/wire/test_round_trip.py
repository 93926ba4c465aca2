"""Property tests: any value of any wire type survives dumps → loads unchanged."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given

from paddler import wire
from paddler.wire import converter

from .strategies import fast, for_type

TYPES: list[Any] = [
    wire.InferenceParameters,
    wire.BalancerDesiredState,
    wire.AgentDesiredState,
    wire.AgentDesiredModel,
    wire.ChatTemplate,
    wire.ContinueFromConversationHistoryParams,
    wire.ContinueFromRawPromptParams,
    wire.GenerateEmbeddingBatchParams,
    wire.GeneratedTokenResult,
    wire.EmbeddingResult,
    wire.TokenUsage,
    wire.ParsedToolCall,
    wire.SlotAggregatedStatusSnapshot,
    wire.AgentControllerSnapshot,
    wire.AgentControllerPoolSnapshot,
    wire.BufferedRequestsSnapshot,
    wire.ModelMetadata,
    wire.AgentIssue,
    wire.BalancerToAgentMessage,
    wire.AgentToBalancerMessage,
    wire.InferenceServerMessage,
    wire.InferenceClientMessage,
]


NAMES = {id(value): name for name, value in vars(wire).items()}


@pytest.mark.parametrize("tp", TYPES, ids=[NAMES[id(tp)] for tp in TYPES])
def test_round_trip(tp: Any) -> None:
    """``loads(dumps(x, T), T) == x`` for generated values of each wire type."""

    @fast
    @given(for_type(tp))
    def check(value: Any) -> None:
        assert converter.loads(converter.dumps(value, tp), tp) == value

    check()


@fast
@given(for_type(wire.AgentToBalancerMessage | wire.BalancerToAgentMessage))
def test_dumps_without_cls_matches_message_union(message: Any) -> None:
    """Writing a socket message without naming its union gives the same text as naming it."""
    union = (
        wire.AgentToBalancerMessage
        if isinstance(
            message,
            wire.RegisterAgent | wire.UpdateAgentStatus | wire.DeregisterAgent | wire.AgentResponse,
        )
        else wire.BalancerToAgentMessage
    )
    assert converter.dumps(message) == converter.dumps(message, union)
