"""``POST /v1/embeddings``: a wire embedding batch, answered all-or-nothing, float or base64."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from paddler.errors import PaddlerError
from paddler.wire import (
    DEFAULT_POOL,
    L2,
    DocumentExceedsBatchSize,
    Embedding,
    EmbeddingDone,
    EmbeddingError,
    EmbeddingInputDocument,
    EmbeddingRejectedDueToActiveTokenGeneration,
    EmbeddingsDisabled,
    GenerateEmbeddingBatchParams,
    NoEmbeddingsProduced,
)
from paddler_server.openai._errors import OpenAIError, error_from_paddler, invalid
from paddler_server.openai._fields import Object, child, opt_int, opt_str
from paddler_server.openai._generation import unwrap_envelope

if TYPE_CHECKING:
    from paddler.balancer import Balancer

__all__ = ["EmbeddingRequest", "answer_embeddings", "read_embedding_request"]

DISABLED = (
    "Embeddings are not enabled on this cluster: set enable_embeddings in the balancer's "
    "inference parameters (PUT /api/v1/balancer_desired_state)"
)


@attrs.frozen
class EmbeddingRequest:
    params: GenerateEmbeddingBatchParams
    model: str | None
    base64: bool


def read_embedding_request(body: Object) -> EmbeddingRequest:
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not inputs:
        raise invalid("input", "expected a string or a non-empty array of strings")
    for i, item in enumerate(inputs):
        if not isinstance(item, str):
            raise invalid(child("input", i), "expected a string (token arrays are not supported)")
        if not item:
            raise invalid(child("input", i), "must not be empty")
    encoding = opt_str(body, "encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise invalid("encoding_format", f"expected 'float' or 'base64', got {encoding!r}")
    if opt_int(body, "dimensions", minimum=1) is not None:
        raise invalid(
            "dimensions",
            "choosing the number of dimensions is not supported",
            code="unsupported_value",
        )
    documents = tuple(
        EmbeddingInputDocument(id=str(i), content=text) for i, text in enumerate(inputs)
    )
    return EmbeddingRequest(
        params=GenerateEmbeddingBatchParams(input_batch=documents, normalization_method=L2()),
        model=opt_str(body, "model"),
        base64=encoding == "base64",
    )


def _encode(vector: tuple[float, ...], as_base64: bool) -> Any:
    if not as_base64:
        return list(vector)
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def _fail(result: object) -> OpenAIError:
    if isinstance(result, EmbeddingsDisabled):
        return OpenAIError(501, DISABLED, code="embeddings_disabled")
    if isinstance(result, DocumentExceedsBatchSize):
        return invalid(
            child("input", int(result.source_document_id)),
            f"the document has {result.document_tokens} tokens; the limit (n_batch) is "
            f"{result.n_batch}",
            code="context_length_exceeded",
        )
    if isinstance(result, EmbeddingRejectedDueToActiveTokenGeneration):
        return OpenAIError(503, "The agent is busy generating tokens; retry shortly")
    if isinstance(result, EmbeddingError):
        return OpenAIError(500, f"Embedding failed: {result.message}")
    if isinstance(result, NoEmbeddingsProduced):
        return OpenAIError(500, "No embeddings were produced")
    return OpenAIError(500, f"Unexpected embedding result {type(result).__name__}")


async def _collect(
    balancer: Balancer, params: GenerateEmbeddingBatchParams, pool: str
) -> tuple[dict[int, Embedding], int]:
    """The vectors by input index, and the inputs' token count (what the agents reported)."""
    vectors: dict[int, Embedding] = {}
    async with balancer.embed(params, pool=pool) as stream:
        async for message in stream:
            result = unwrap_envelope(message)
            if isinstance(result, Embedding):
                vectors[int(result.source_document_id)] = result
            elif isinstance(result, EmbeddingDone):
                break
            elif result is not None:
                raise _fail(result)
        # Our agents count each document's tokens; a Paddler 4.1 agent does not (then 0).
        tokens = int(getattr(stream, "prompt_tokens", 0))
    return vectors, tokens


async def answer_embeddings(
    balancer: Balancer, request: EmbeddingRequest, model: str, *, pool: str = DEFAULT_POOL
) -> dict[str, Any]:
    try:
        vectors, tokens = await _collect(balancer, request.params, pool)
    except PaddlerError as exc:
        if exc.code == 501:
            raise OpenAIError(501, DISABLED, code="embeddings_disabled") from exc
        raise error_from_paddler(exc) from exc
    missing = [i for i in range(len(request.params.input_batch)) if i not in vectors]
    if missing:
        raise OpenAIError(500, f"No embedding came back for input {missing[0]}")
    return {
        "object": "list",
        "data": [
            {
                "object": "embedding",
                "index": i,
                "embedding": _encode(vectors[i].embedding, request.base64),
            }
            for i in sorted(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
