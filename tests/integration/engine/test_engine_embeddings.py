"""Embeddings (spec §6.7) on the real model, with Mean pooling set explicitly (SmolLM2 has none)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import anyio
import attrs
import numpy as np
import pytest

from paddler.engine import LlamaEngine
from paddler.wire import (
    L2,
    ContinueFromRawPromptParams,
    DocumentExceedsBatchSize,
    Embedding,
    EmbeddingDone,
    EmbeddingInputDocument,
    EmbeddingNormalizationMethod,
    EmbeddingRejectedDueToActiveTokenGeneration,
    EmbeddingResult,
    EmbeddingsDisabled,
    GenerateEmbeddingBatchParams,
    InferenceParameters,
    NoEmbeddingsProduced,
    NoNormalization,
    PoolingType,
    RmsNorm,
    is_embedding_terminal,
)

pytestmark = [pytest.mark.model, pytest.mark.anyio]


@pytest.fixture(scope="module")
async def engine(model_path: Path) -> AsyncIterator[LlamaEngine]:
    params = attrs.evolve(
        InferenceParameters.deterministic(),
        enable_embeddings=True,
        pooling_type=PoolingType.MEAN,
        context_size=1024,
        n_batch=64,
    )
    async with await LlamaEngine.load(model_path, params, slots=2) as engine:
        yield engine


async def embed(
    engine: LlamaEngine, texts: Sequence[str], method: EmbeddingNormalizationMethod | None = None
) -> list[EmbeddingResult]:
    method = method or L2()
    docs = tuple(EmbeddingInputDocument(id=f"doc-{i}", content=t) for i, t in enumerate(texts))
    results: list[EmbeddingResult] = []
    with anyio.fail_after(60):
        async for result in engine.embed(
            GenerateEmbeddingBatchParams(input_batch=docs, normalization_method=method)
        ):
            results.append(result)
    assert is_embedding_terminal(results[-1])
    return results


def vectors(results: Sequence[EmbeddingResult]) -> dict[str, np.ndarray]:
    return {
        r.source_document_id: np.array(r.embedding) for r in results if isinstance(r, Embedding)
    }


async def test_one_unit_vector_per_document_identical_for_identical_text(
    engine: LlamaEngine,
) -> None:
    """Five documents over two slots: chunked, one L2-normalised vector each."""
    texts = [
        "The cat sat on the mat.",
        "Quantum physics is hard.",
        "The cat sat on the mat.",
        "Hello",
        "A much longer sentence about the weather in Paris today.",
    ]
    results = await embed(engine, texts)
    assert isinstance(results[-1], EmbeddingDone)
    got = vectors(results)
    assert sorted(got) == [f"doc-{i}" for i in range(5)]
    assert {v.shape for v in got.values()} == {(576,)}
    for v in got.values():
        assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-4)
    assert np.allclose(got["doc-0"], got["doc-2"], atol=1e-5)
    assert not np.allclose(got["doc-0"], got["doc-1"], atol=1e-3)
    first = next(r for r in results if isinstance(r, Embedding))
    assert first.pooling_type == PoolingType.MEAN


async def test_rms_and_unnormalised_variants(engine: LlamaEngine) -> None:
    raw = vectors(await embed(engine, ["Hello world"], NoNormalization()))["doc-0"]
    rms = vectors(await embed(engine, ["Hello world"], RmsNorm(epsilon=1e-6)))["doc-0"]
    assert np.sqrt(np.mean(rms.astype(np.float64) ** 2)) == pytest.approx(1.0, abs=1e-3)
    assert np.allclose(
        rms * np.sqrt(np.mean(raw.astype(np.float64) ** 2) + 1e-6), raw, rtol=1e-3, atol=1e-4
    )


async def test_oversized_document_is_skipped_with_its_error(engine: LlamaEngine) -> None:
    results = await embed(engine, ["word " * 200, "short"])
    (too_big,) = [r for r in results if isinstance(r, DocumentExceedsBatchSize)]
    assert too_big.source_document_id == "doc-0"
    assert too_big.n_batch == 64
    assert too_big.document_tokens > 64
    assert sorted(vectors(results)) == ["doc-1"]
    only_big = await embed(engine, ["word " * 200])
    assert isinstance(only_big[-1], NoEmbeddingsProduced)


async def test_embedding_is_rejected_while_generating(engine: LlamaEngine) -> None:
    raw = "<|im_start|>user\nCount to a hundred.<|im_end|>\n<|im_start|>assistant\n"
    stream = engine.generate(ContinueFromRawPromptParams(raw_prompt=raw, max_tokens=500))
    async for _ in stream:
        break
    results = await embed(engine, ["Hello"])
    assert results == [EmbeddingRejectedDueToActiveTokenGeneration()]
    await stream.cancel()
    async for _ in stream:
        pass
    assert isinstance((await embed(engine, ["Hello"]))[-1], EmbeddingDone)


async def test_generation_engine_has_embeddings_disabled(model_path: Path) -> None:
    params = attrs.evolve(InferenceParameters.deterministic(), context_size=512, n_batch=64)
    async with await LlamaEngine.load(model_path, params, slots=1) as engine:
        assert await embed(engine, ["Hello"]) == [EmbeddingsDisabled()]
