"""Every error the library raises, in one hierarchy.

The library never speaks HTTP, but each error carries a stable integer ``code`` that the server
maps to a status (and that goes into ``ErrorEnvelope`` bodies once streaming has started)::

    PaddlerError (Exception)                   code 500
    ├── InvalidRequest (ValueError)            400   names the offending field
    ├── UnknownAgent (LookupError)             404
    ├── UnknownPool (LookupError)              404   no such model pool
    ├── GenerationDisabled                     501   cluster is in embeddings mode
    ├── EmbeddingsNotEnabled                   501   embeddings are off in the parameters
    ├── AgentGone                              502   agent connection closed mid-request
    ├── BufferFull                             503   max_buffered_requests reached
    ├── NoAgents                               503   nothing registered to split embeddings over
    ├── StateNotSet                            503   no applicable state yet
    ├── ShuttingDown                           503   balancer is shutting down
    ├── BufferTimeout (TimeoutError)           504   no slot within buffered_request_timeout
    ├── InferenceItemTimeout (TimeoutError)    504   no next item within inference_item_timeout
    ├── AgentRpcTimeout (TimeoutError)         504   agent did not answer an RPC within 3 s
    ├── TransportError                         500
    │   ├── ConnectError                             the balancer could not be reached
    │   └── ProtocolError                            the peer broke the agent-socket protocol
    ├── WireError (ValueError)                 400   ``paddler.wire``: a document off the spec
    ├── GrammarLimitError (ValueError)         400   ``paddler.wire``: a schema past a limit
    ├── StateStoreError                        500   ``paddler.balancer``: state store unusable
    ├── ModelSourceError                       500   ``paddler.agent``: model not made local
    ├── ModelLoadError                         500   ``paddler.engine``: model not loaded
    └── ClientError                                  ``paddler.client``: what the client raises

The last six live next to the code that raises them (this module imports nothing, so every
layer may import it); ``paddler`` re-exports ``WireError`` too.
"""

from __future__ import annotations

__all__ = [
    "AgentGone",
    "AgentRpcTimeout",
    "BufferFull",
    "BufferTimeout",
    "ConnectError",
    "EmbeddingsNotEnabled",
    "GenerationDisabled",
    "InferenceItemTimeout",
    "InvalidRequest",
    "NoAgents",
    "PaddlerError",
    "ProtocolError",
    "ShuttingDown",
    "StateNotSet",
    "TransportError",
    "UnknownAgent",
    "UnknownPool",
]


class PaddlerError(Exception):
    """Base of every error the library raises on purpose."""

    code: int = 500

    @property
    def description(self) -> str:
        """The human sentence that goes into an error envelope."""
        return str(self) or type(self).__name__


class InvalidRequest(PaddlerError, ValueError):
    """A request or document failed validation; the message names the field."""

    code = 400

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownAgent(PaddlerError, LookupError):
    """No agent with that id is registered."""

    code = 404


class UnknownPool(PaddlerError, LookupError):
    """No model pool has that name: it is not ``default``, no agent joined it, and no desired
    state was set or stored for it."""

    code = 404


class GenerationDisabled(PaddlerError):
    """Token generation was asked for while the cluster is in embeddings mode."""

    code = 501

    def __init__(self, message: str = "") -> None:
        super().__init__(
            message or "Token generation is disabled while the cluster is configured for embeddings"
        )


class EmbeddingsNotEnabled(PaddlerError):
    """An embedding batch arrived while the inference parameters have embeddings off.

    (``paddler.wire.EmbeddingsDisabled`` is the agent's wire result for the same case.)
    """

    code = 501

    def __init__(
        self, message: str = "Embedding generation is not enabled in the inference parameters"
    ) -> None:
        super().__init__(message)


class AgentGone(PaddlerError):
    """The agent serving a request or RPC disconnected before it finished."""

    code = 502


class BufferFull(PaddlerError):
    """No slot was free and the request buffer already holds max_buffered_requests."""

    code = 503


class NoAgents(PaddlerError):
    """An embedding batch arrived while no agent is connected."""

    code = 503


class StateNotSet(PaddlerError):
    """The balancer has no applicable state yet."""

    code = 503


class ShuttingDown(PaddlerError):
    """The balancer is shutting down and takes no more requests."""

    code = 503


class BufferTimeout(PaddlerError, TimeoutError):
    """A buffered request waited longer than buffered_request_timeout for a slot."""

    code = 504


class InferenceItemTimeout(PaddlerError, TimeoutError):
    """An agent sent no next item within inference_item_timeout."""

    code = 504


class AgentRpcTimeout(PaddlerError, TimeoutError):
    """An agent did not answer a management RPC in time."""

    code = 504


class TransportError(PaddlerError):
    """Moving messages between an agent and a balancer failed."""


class ConnectError(TransportError):
    """The balancer could not be reached (refused, DNS, handshake)."""


class ProtocolError(TransportError):
    """The peer sent something the agent-socket protocol does not allow."""
