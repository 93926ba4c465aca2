"""Which agent response ends its request: the one rule both ends of the agent socket apply.

The balancer frees the request's slot on it and the agent forgets the request on it, so the
rule lives here, in the wire layer that both import, rather than on one side.
"""

from __future__ import annotations

from ._agent_socket import ResponsePayload
from ._embedding import is_embedding_terminal
from ._generation import is_terminal

__all__ = ["is_terminal_payload"]


def is_terminal_payload(payload: ResponsePayload) -> bool:
    """Whether an agent ``Response`` payload is the last one of its request.

    Tokens, tool-call reports, embeddings and oversized-document notes come before the end;
    everything else (``Done``, ``EmbeddingDone``, an error, a management answer, a kind this
    side does not know) ends it, so a request never hangs on something it cannot read.
    """
    return is_terminal(payload) and is_embedding_terminal(payload)  # type: ignore[arg-type]
