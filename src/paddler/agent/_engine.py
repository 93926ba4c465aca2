"""What the agent needs from an engine, and what it asks a loader for.

``paddler.engine.LlamaEngine`` satisfies :class:`Engine` (mypy checks it in the default
loader); tests and benchmarks pass loaders of fixed-token engines. Nothing here imports the
engine package, so an agent with a custom loader never loads llama.cpp.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Protocol, TypeVar

import attrs

from paddler.wire import (
    EmbeddingResult,
    GeneratedTokenResult,
    GenerateEmbeddingBatchParams,
    InferenceParameters,
    InferenceRequestPayload,
    SamplingOverrides,
)

__all__ = ["Engine", "EngineLoader", "EngineSpec", "EngineStream", "load_llama_engine"]

T_co = TypeVar("T_co", covariant=True)


class EngineStream(Protocol[T_co]):
    """One request's results; the last is terminal (``Done``, an error, ``EmbeddingDone``)."""

    def __aiter__(self) -> AsyncIterator[T_co]: ...

    async def cancel(self) -> None:
        """Stop early: the stream then ends with ``Done`` and the usage so far."""

    async def aclose(self) -> None: ...


class Engine(Protocol):
    """A loaded model serving requests on its slots."""

    @property
    def metadata(self) -> Mapping[str, str]:
        """The GGUF metadata (``GetModelMetadata`` answers with it)."""

    @property
    def extra_buffer_types_fault(self) -> str | None:
        """Why llama.cpp's optional CPU kernels were turned off while loading (or None)."""

    def generate(
        self,
        params: InferenceRequestPayload,
        *,
        overrides: SamplingOverrides | None = None,
        continuation: str | None = None,
    ) -> EngineStream[GeneratedTokenResult]:
        """``continuation``: answer text already streamed elsewhere, to resume after."""

    def embed(self, params: GenerateEmbeddingBatchParams) -> EngineStream[EmbeddingResult]: ...

    async def wait_stopped(self) -> str | None:
        """Return once the engine stopped: how its worker died, or None after ``aclose()``."""

    async def aclose(self) -> None: ...


@attrs.frozen
class EngineSpec:
    """What the agent asks its loader for: the desired state's model, on this agent's slots.

    ``None`` fields mean "the engine's default".
    """

    model_path: Path
    parameters: InferenceParameters
    slots: int
    chat_template_override: str | None = None
    multimodal_projection: Path | None = None
    extra_buffer_types: bool = True
    threads: int | None = None
    stall_timeout: float | None = None


EngineLoader = Callable[[EngineSpec], Awaitable[Engine]]
"""``await loader(spec)`` → a loaded engine; raising reports the load failure as an issue."""


async def load_llama_engine(spec: EngineSpec) -> Engine:
    """The default loader: ``LlamaEngine.load``, in a worker process of its own."""
    from paddler.engine import LlamaEngine
    from paddler.engine._engine import STALL_TIMEOUT

    engine: Engine = await LlamaEngine.load(
        spec.model_path,
        spec.parameters,
        slots=spec.slots,
        chat_template_override=spec.chat_template_override,
        multimodal_projection=spec.multimodal_projection,
        extra_buffer_types=spec.extra_buffer_types,
        threads=spec.threads,
        stall_timeout=STALL_TIMEOUT if spec.stall_timeout is None else spec.stall_timeout,
    )
    return engine
