"""Messages on the client ↔ balancer inference WebSocket and NDJSON streams (spec §2.2).

Names follow Paddler: ``InferenceServerMessage`` is what the server *receives* (client →
server); ``InferenceClientMessage`` is what the client receives (server → client), also
each line of the NDJSON responses.
"""

from __future__ import annotations

from attrs import frozen

from ._agent_socket import ResponsePayload, StopRespondingTo
from ._requests import ContinueFromConversationHistoryParams, ContinueFromRawPromptParams

__all__ = [
    "ErrorBody",
    "ErrorEnvelope",
    "InferenceClientMessage",
    "InferenceClientNotification",
    "InferenceRequest",
    "InferenceRequestPayload",
    "InferenceServerMessage",
    "ResponseEnvelope",
    "TokenGenerationDisabledNotification",
    "TokenGenerationEnabledNotification",
]

InferenceRequestPayload = ContinueFromConversationHistoryParams | ContinueFromRawPromptParams


@frozen
class InferenceRequest:
    """``{"Request":{"id":"<client id>","request":{...}}}``"""

    id: str
    request: InferenceRequestPayload


@frozen
class ErrorBody:
    """An HTTP-like status code and a description."""

    code: int
    description: str


@frozen
class ErrorEnvelope:
    """``{"Error":{"request_id":...,"error":{"code":...,"description":...}}}``"""

    request_id: str
    error: ErrorBody


InferenceServerMessage = InferenceRequest | StopRespondingTo | ErrorEnvelope


@frozen(kw_only=True)
class ResponseEnvelope:
    """``{"Response":{"generated_by":...,"request_id":...,"response":{...}}}``"""

    generated_by: str | None = None
    request_id: str
    response: ResponsePayload


@frozen
class TokenGenerationDisabledNotification:
    """Wire ``{"Notification":"TokenGenerationDisabled"}``: the cluster is in embeddings mode."""


@frozen
class TokenGenerationEnabledNotification:
    """Wire ``{"Notification":"TokenGenerationEnabled"}``."""


InferenceClientNotification = (
    TokenGenerationDisabledNotification | TokenGenerationEnabledNotification
)

InferenceClientMessage = (
    ResponseEnvelope
    | ErrorEnvelope
    | TokenGenerationDisabledNotification
    | TokenGenerationEnabledNotification
)
