"""The agent's llama.cpp engine: slots, continuous batching, prompt cache, anyio face."""

from paddler.engine._engine import LlamaEngine
from paddler.engine._errors import (
    ChatTemplateDoesNotCompile,
    ModelCannotBeLoaded,
    ModelLoadError,
    MultimodalProjectionCannotBeLoaded,
    SlotCannotStart,
    UnableToFindChatTemplate,
)
from paddler.engine._slot import Slot, SlotState
from paddler.engine._stream import (
    EmbeddingResultStream,
    EngineStatistics,
    GenerationStream,
    ResultStream,
)

__all__ = [
    "ChatTemplateDoesNotCompile",
    "EmbeddingResultStream",
    "EngineStatistics",
    "GenerationStream",
    "LlamaEngine",
    "ModelCannotBeLoaded",
    "ModelLoadError",
    "MultimodalProjectionCannotBeLoaded",
    "ResultStream",
    "Slot",
    "SlotCannotStart",
    "SlotState",
    "UnableToFindChatTemplate",
]
