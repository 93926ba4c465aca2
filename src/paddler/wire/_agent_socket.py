"""Messages on the agent ↔ balancer WebSocket (spec §3.1 to §3.4).

Each union is flat (one class per message); the converter writes the serde nesting, e.g.
``RegisterAgent`` ↔ ``{"Notification":{"RegisterAgent":{...}}}``.
"""

from __future__ import annotations

from attrs import frozen

from ._embedding import EmbeddingResult, GenerateEmbeddingBatchParams
from ._generation import GeneratedTokenResult
from ._markers import newtype
from ._requests import ContinueFromConversationHistoryParams, ContinueFromRawPromptParams
from ._sampling import SamplingOverrides
from ._snapshots import ModelMetadata, SlotAggregatedStatusSnapshot
from ._state import AgentDesiredState, ChatTemplate

__all__ = [
    "AgentNotification",
    "AgentRequest",
    "AgentRequestPayload",
    "AgentResponse",
    "AgentToBalancerMessage",
    "BalancerNotification",
    "BalancerToAgentMessage",
    "ChatTemplateOverrideResponse",
    "DeregisterAgent",
    "GetChatTemplateOverride",
    "GetModelMetadata",
    "ModelMetadataResponse",
    "RegisterAgent",
    "ResponsePayload",
    "SetState",
    "StopRespondingTo",
    "Timeout",
    "TooManyBufferedRequests",
    "UpdateAgentStatus",
    "Version",
]


# balancer → agent


@frozen
class Version:
    """Sent first on every agent socket; a mismatch is only logged."""

    version: str


@frozen
class SetState:
    """Apply this state (sent after registration and on every change)."""

    desired_state: AgentDesiredState


@newtype
@frozen
class StopRespondingTo:
    """Cancel one request (also a client → server notification on the inference socket)."""

    request_id: str


BalancerNotification = SetState | StopRespondingTo | Version


@frozen
class GetChatTemplateOverride:
    """Ask the agent for its template override (answered by ``ChatTemplateOverrideResponse``)."""


@frozen
class GetModelMetadata:
    """Ask the agent for its model's GGUF metadata (answered by ``ModelMetadataResponse``)."""


AgentRequestPayload = (
    ContinueFromConversationHistoryParams
    | ContinueFromRawPromptParams
    | GenerateEmbeddingBatchParams
    | GetChatTemplateOverride
    | GetModelMetadata
)


@frozen
class AgentRequest:
    """``{"Request":{"id":...,"request":{...}}}``

    ``sampling_overrides`` is our extension (see ``SamplingOverrides``): written only when
    set, so a request without it is byte-for-byte Paddler's frame. Paddler's own agents reject
    unknown fields, so only our agents can serve a request that carries it.
    """

    id: str
    request: AgentRequestPayload
    sampling_overrides: SamplingOverrides | None = None


BalancerToAgentMessage = SetState | StopRespondingTo | Version | AgentRequest


# agent → balancer


@frozen(kw_only=True)
class RegisterAgent:
    """The agent's first message after ``Version``."""

    name: str | None = None
    slot_aggregated_status_snapshot: SlotAggregatedStatusSnapshot


@frozen
class UpdateAgentStatus:
    """Sent every second and after every local change."""

    slot_aggregated_status_snapshot: SlotAggregatedStatusSnapshot


@frozen
class DeregisterAgent:
    """Graceful stop; the balancer closes the socket."""


AgentNotification = RegisterAgent | UpdateAgentStatus | DeregisterAgent


@newtype
@frozen
class ChatTemplateOverrideResponse:
    """Wire ``{"ChatTemplateOverride": null | {"content": ...}}``."""

    chat_template_override: ChatTemplate | None


@newtype
@frozen
class ModelMetadataResponse:
    """Wire ``{"ModelMetadata": null | {"metadata": {...}}}``."""

    model_metadata: ModelMetadata | None


@frozen
class Timeout:
    """Legacy response kind; the balancer now sends an ``Error`` envelope with 504."""


@frozen
class TooManyBufferedRequests:
    """Legacy response kind; the balancer now sends an ``Error`` envelope with 503."""


ResponsePayload = (
    GeneratedTokenResult
    | EmbeddingResult
    | ChatTemplateOverrideResponse
    | ModelMetadataResponse
    | Timeout
    | TooManyBufferedRequests
)
"""What a ``Response`` carries; ``GeneratedTokenResult`` variants are written under
``"GeneratedToken"`` and ``EmbeddingResult`` variants under ``"Embedding"``."""


@frozen(kw_only=True)
class AgentResponse:
    """``{"Response":{"generated_by":...,"request_id":...,"response":{...}}}``"""

    generated_by: str | None = None
    request_id: str
    response: ResponsePayload


AgentToBalancerMessage = RegisterAgent | UpdateAgentStatus | DeregisterAgent | AgentResponse
