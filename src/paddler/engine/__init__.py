"""The agent's llama.cpp engine: slots, continuous batching, prompt cache, anyio face."""

from paddler.engine._engine import (
    EmbeddingStream,
    EngineStatistics,
    GenerationStream,
    LlamaEngine,
    ResultStream,
)
from paddler.engine._errors import (
    ChatTemplateDoesNotCompile,
    ModelCannotBeLoaded,
    ModelLoadError,
    SlotCannotStart,
    UnableToFindChatTemplate,
)
from paddler.engine._sampling import SamplingOverrides
from paddler.engine._slot import Slot, SlotState

__all__ = [
    "ChatTemplateDoesNotCompile",
    "EmbeddingStream",
    "EngineStatistics",
    "GenerationStream",
    "LlamaEngine",
    "ModelCannotBeLoaded",
    "ModelLoadError",
    "ResultStream",
    "SamplingOverrides",
    "Slot",
    "SlotCannotStart",
    "SlotState",
    "UnableToFindChatTemplate",
]
