"""Embedding requests and what an embedding stream yields (spec §2.2, §3.4)."""

from __future__ import annotations

import math
from typing import Any

from attrs import Attribute, field, frozen

from ._errors import WireProblem
from ._inference_params import PoolingType
from ._markers import F32, newtype

__all__ = [
    "L2",
    "DocumentExceedsBatchSize",
    "Embedding",
    "EmbeddingDone",
    "EmbeddingError",
    "EmbeddingInputDocument",
    "EmbeddingNormalizationMethod",
    "EmbeddingRejectedDueToActiveTokenGeneration",
    "EmbeddingResult",
    "EmbeddingsDisabled",
    "GenerateEmbeddingBatchParams",
    "NoEmbeddingsProduced",
    "NoNormalization",
    "RmsNorm",
    "is_embedding_terminal",
]


def _positive_finite(_: Any, attribute: Attribute[float], value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise WireProblem(f"{attribute.name} must be a finite number above 0 (got {value})")


@frozen
class L2:
    """Divide by the Euclidean norm (wire ``"L2"``)."""


@frozen
class NoNormalization:
    """Leave the vector as pooled (wire ``"None"``)."""


@frozen
class RmsNorm:
    """Divide by ``sqrt(mean(x²) + epsilon)`` (wire ``{"RmsNorm":{"epsilon":...}}``).

    ``epsilon`` must be finite and above 0: otherwise a zero vector gives NaN, which has no JSON.
    """

    epsilon: F32 = field(validator=_positive_finite)


EmbeddingNormalizationMethod = L2 | NoNormalization | RmsNorm


@frozen
class EmbeddingInputDocument:
    id: str
    content: str


@frozen(kw_only=True)
class GenerateEmbeddingBatchParams:
    """Body of ``POST /api/v1/generate_embedding_batch``."""

    input_batch: tuple[EmbeddingInputDocument, ...]
    normalization_method: EmbeddingNormalizationMethod


@frozen(kw_only=True)
class Embedding:
    """One document's vector.

    ``document_tokens`` (how many tokens the document was) is our extension, for the OpenAI
    usage: an agent writes it only to a balancer that announced ``embedding_token_counts``,
    and the balancer takes it off before it forwards the embedding, so clients see Paddler's
    object.
    """

    embedding: tuple[F32, ...]
    normalization_method: EmbeddingNormalizationMethod
    pooling_type: PoolingType
    source_document_id: str
    document_tokens: int | None = None


@frozen(kw_only=True)
class DocumentExceedsBatchSize:
    """A document longer than ``n_batch`` tokens; it is skipped (not terminal)."""

    document_tokens: int
    n_batch: int
    source_document_id: str


@frozen
class EmbeddingDone:
    """The end of an embedding stream (wire ``"Done"``)."""


@frozen
class EmbeddingsDisabled:
    """The cluster is not in embeddings mode."""


@newtype
@frozen
class EmbeddingError:
    """Wire ``{"Error":"message"}``."""

    message: str


@frozen
class EmbeddingRejectedDueToActiveTokenGeneration:
    """The agent is generating tokens; embeddings are exclusive."""


@frozen
class NoEmbeddingsProduced:
    """Every document was skipped."""


EmbeddingResult = (
    Embedding
    | DocumentExceedsBatchSize
    | EmbeddingDone
    | EmbeddingsDisabled
    | EmbeddingError
    | EmbeddingRejectedDueToActiveTokenGeneration
    | NoEmbeddingsProduced
)


def is_embedding_terminal(result: EmbeddingResult) -> bool:
    """Whether this ends its stream (anything but an embedding or an oversized document)."""
    return not isinstance(result, Embedding | DocumentExceedsBatchSize)
