"""Embedding batches: plan documents into sub-batches, decode, pool, normalise (spec §6.7)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from paddler.engine._llama import Batch, FloatRows, LlamaContext, LlamaModel
from paddler.wire import (
    L2,
    DocumentExceedsBatchSize,
    Embedding,
    EmbeddingDone,
    EmbeddingError,
    EmbeddingNormalizationMethod,
    EmbeddingResult,
    GenerateEmbeddingBatchParams,
    NoEmbeddingsProduced,
    PoolingType,
    RmsNorm,
)


def normalize(vector: FloatRows, method: EmbeddingNormalizationMethod) -> FloatRows:
    """L2 (a zero vector stays zero), RmsNorm(epsilon), or as is."""
    v = vector.astype(np.float64)
    if isinstance(method, L2):
        norm = float(np.linalg.norm(v))
        scale = 1.0 / norm if norm > 0 else 1.0
    elif isinstance(method, RmsNorm):
        scale = 1.0 / float(np.sqrt(np.mean(v * v) + method.epsilon))
    else:
        return vector
    out: FloatRows = (v * scale).astype(np.float32)
    return out


def plan(sizes: Sequence[int], n_batch: int, max_sequences: int) -> list[list[int]]:
    """Greedy sub-batches of document indexes within `n_batch` tokens and `max_sequences`."""
    batches: list[list[int]] = []
    current: list[int] = []
    used = 0
    for index, size in enumerate(sizes):
        if current and (used + size > n_batch or len(current) >= max_sequences):
            batches.append(current)
            current, used = [], 0
        current.append(index)
        used += size
    if current:
        batches.append(current)
    return batches


def run_embeddings(
    params: GenerateEmbeddingBatchParams,
    *,
    model: LlamaModel,
    ctx: LlamaContext,
    batch: Batch,
    max_sequences: int,
    pooling: PoolingType,
    emit: Callable[[list[EmbeddingResult]], None],
) -> EmbeddingResult:
    """Embed every document (emitting per sub-batch); return the terminal result."""
    documents = list(params.input_batch)
    tokenized = [model.tokenize(d.content, add_special=True) or [model.bos] for d in documents]
    fitting: list[int] = []
    skipped: list[EmbeddingResult] = []
    for index, tokens in enumerate(tokenized):
        if len(tokens) > ctx.n_batch:
            skipped.append(
                DocumentExceedsBatchSize(
                    document_tokens=len(tokens),
                    n_batch=ctx.n_batch,
                    source_document_id=documents[index].id,
                )
            )
        else:
            fitting.append(index)
    if skipped:
        emit(skipped)
    produced = 0
    for group in plan([len(tokenized[i]) for i in fitting], ctx.n_batch, max_sequences):
        indexes = [fitting[g] for g in group]
        ctx.clear()
        batch.clear()
        for seq_id, index in enumerate(indexes):
            batch.add_all_outputs(tokenized[index], seq_id)
        rc = ctx.decode(batch)
        if rc != 0:
            ctx.clear()
            return EmbeddingError(f"llama_decode failed with status {rc}")
        results: list[EmbeddingResult] = []
        for seq_id, index in enumerate(indexes):
            vector = ctx.sequence_embedding(seq_id)
            if vector is None:
                continue
            normalized = normalize(vector, params.normalization_method)
            if not np.isfinite(normalized).all():  # JSON cannot carry it; say so instead
                ctx.clear()
                return EmbeddingError(
                    f"the embedding of document {documents[index].id!r} is not finite"
                )
            results.append(
                Embedding(
                    embedding=tuple(float(x) for x in normalized),
                    normalization_method=params.normalization_method,
                    pooling_type=pooling,
                    source_document_id=documents[index].id,
                    document_tokens=len(tokenized[index]),
                )
            )
        ctx.clear()
        produced += len(results)
        if results:
            emit(results)
    return EmbeddingDone() if produced else NoEmbeddingsProduced()
