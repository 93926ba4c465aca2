"""The agent's llama.cpp engine: slots, continuous batching, prompt cache, anyio face.

Two ways in. `LlamaEngine` (what an agent uses) loads the model in a worker process and runs a
`Scheduler` there; its `Slot`s live in that process, so it reports them as counts
(`statistics()`). To run the loop in your own process, `load_model` and build a `Scheduler`:
it owns the `Slot`s, takes `Submit`/`Embed`/`Cancel`/`Stop` commands and hands each step's
results to a `deliver` callback. Per-request sampling is `paddler.wire.SamplingOverrides`.
A load failure is a `ModelLoadError`; the agent maps each kind to its `paddler.wire` issue.
"""

from paddler.engine._engine import LlamaEngine
from paddler.engine._errors import ModelLoadError
from paddler.engine._loading import LoadedModel, load_model
from paddler.engine._scheduler import (
    Cancel,
    Command,
    CommandSource,
    Embed,
    Outbox,
    QueueCommands,
    Scheduler,
    SchedulerCounters,
    Stop,
    Submit,
)
from paddler.engine._slot import Slot, SlotState
from paddler.engine._stream import (
    EmbeddingResultStream,
    EngineStatistics,
    GenerationStream,
    ResultStream,
)

__all__ = [
    "Cancel",
    "Command",
    "CommandSource",
    "Embed",
    "EmbeddingResultStream",
    "EngineStatistics",
    "GenerationStream",
    "LlamaEngine",
    "LoadedModel",
    "ModelLoadError",
    "Outbox",
    "QueueCommands",
    "ResultStream",
    "Scheduler",
    "SchedulerCounters",
    "Slot",
    "SlotState",
    "Stop",
    "Submit",
    "load_model",
]
