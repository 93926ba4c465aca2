"""Messages on the agent ↔ balancer WebSocket (spec §3.1 to §3.4).

Each union is flat (one class per message); the converter writes the serde nesting, e.g.
``RegisterAgent`` ↔ ``{"Notification":{"RegisterAgent":{...}}}``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from attrs import frozen

from ._embedding import EmbeddingResult, GenerateEmbeddingBatchParams
from ._generation import GeneratedTokenResult
from ._markers import newtype
from ._requests import ContinueFromConversationHistoryParams, ContinueFromRawPromptParams
from ._sampling import SamplingOverrides
from ._snapshots import ModelMetadata, SlotAggregatedStatusSnapshot
from ._state import AgentDesiredState, ChatTemplate

__all__ = [
    "EXTENSIONS_HEADER",
    "POLICY_REPORT_EXTENSIONS",
    "SUPPORTED_EXTENSIONS",
    "AgentNotification",
    "AgentRequest",
    "AgentRequestPayload",
    "AgentResponse",
    "AgentSocketExtension",
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
    "format_extensions",
    "parse_extensions",
]


class AgentSocketExtension(enum.StrEnum):
    """What we add to Paddler's agent socket; each is used only when both ends announce it.

    Paddler 4.1 rejects unknown fields and variants (serde ``deny_unknown_fields``), so a
    field it does not know breaks it: a Rust agent never answers a ``Request`` carrying
    ``sampling_overrides``, and a Rust balancer cannot read a status with an issue variant it
    lacks. The two ends therefore announce what they understand in the WebSocket handshake, in
    an HTTP header that Paddler's ends ignore (``EXTENSIONS_HEADER``): the agent in its upgrade
    request, the balancer in its ``101`` answer (the ones both understand). No header means a
    Paddler 4.1 peer, and then nothing beyond Paddler's wire is sent.
    """

    #: balancer → agent: a ``Request`` may carry ``sampling_overrides``.
    SAMPLING_OVERRIDES = "sampling_overrides"
    #: balancer → agent: a status with ``slots_total: 0`` (a drain) is acknowledged by a
    #: second ``Version``, in order, so the agent knows nothing more was dispatched to it.
    DRAIN_ACK = "drain_ack"
    #: agent → balancer: issues beyond Paddler's variants (``EngineWorkerCrashed``,
    #: ``ExtraBufferTypesDisabled``).
    EXTRA_ISSUES = "extra_issues"
    #: agent → balancer: an ``Embedding`` carries ``document_tokens`` (for OpenAI usage).
    EMBEDDING_TOKEN_COUNTS = "embedding_token_counts"
    #: agent → balancer: a status carries ``cached_prefixes`` (``paddler.prefixes`` hashes of
    #: what its idle slots hold), for the ``cache_aware`` policy.
    CACHED_PREFIXES = "cached_prefixes"
    #: balancer → agent: a ``Request`` may carry ``continuation`` (the text a lost agent
    #: already streamed), so the agent resumes that answer instead of starting it again.
    CONTINUATION = "continuation"
    #: agent → balancer: a text frame may be a JSON array of messages, in order (what the
    #: agent had queued at once, such as one engine delivery of several tokens): one frame to
    #: write and parse instead of one per token.
    FRAME_BATCHES = "frame_batches"


#: The handshake header; its value is a comma-separated list of extension names.
EXTENSIONS_HEADER = "Paddler-Extensions"
#: Every extension this package speaks, as either end.
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(AgentSocketExtension)
#: Extensions that only add reports for a balancing policy: a balancer agrees to them only
#: while its chosen policy reads them (``BalancingPolicy.agent_reports``).
POLICY_REPORT_EXTENSIONS: frozenset[str] = frozenset({AgentSocketExtension.CACHED_PREFIXES})


def parse_extensions(value: str | None) -> frozenset[str]:
    """The names in a header value (unknown ones kept; callers intersect with their own)."""
    if not value:
        return frozenset()
    return frozenset(name.strip().lower() for name in value.split(",") if name.strip())


def format_extensions(extensions: Iterable[str]) -> str:
    """A header value, sorted so it reads the same every time."""
    return ", ".join(sorted(extensions))


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
    #: Extension ``continuation`` (written only when set): the answer text another agent
    #: streamed before it was lost. The engine renders the prompt as usual, appends this as
    #: the answer's start, counts its tokens as generated (usage and ``max_tokens``) and
    #: generates what follows.
    continuation: str | None = None


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
