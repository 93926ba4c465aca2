"""What crosses the pipe between an engine and its worker process, and how it is framed.

Both ends are this package, started from the same interpreter, so messages are pickled attrs
records in length-prefixed frames: no schema to keep in step, and a step's whole outbox costs
one `pickle.dumps`.
"""

from __future__ import annotations

import pickle
import struct
from typing import Any

import attrs

from paddler.engine._scheduler import Outbox, SchedulerCounters
from paddler.wire import InferenceParameters

_HEADER = struct.Struct("<I")


@attrs.frozen
class LoadModel:
    """The first command a worker receives: what to load and how."""

    path: str
    parameters: InferenceParameters
    slots: int
    template_override: str | None
    prompt_cache: bool
    extra_buffer_types: bool
    threads: int | None  # None: the worker's default (half the CPUs, at least 2)
    log_level: int
    projector_path: str | None = None  # a multimodal projection (mmproj) for images


@attrs.frozen
class LoadProgress:
    value: float


@attrs.frozen
class ModelReady:
    """The model is loaded and warmed up; the scheduler runs from now on."""

    metadata: dict[str, str]
    n_ctx: int
    threads: int
    multimodal: bool = False  # a projector is loaded: the model takes images


@attrs.frozen
class LoadFailed:
    error: Exception


@attrs.frozen
class Delivery:
    """One step's results, with the scheduler's counters after it."""

    outbox: Outbox
    counters: SchedulerCounters


@attrs.frozen
class Heartbeat:
    """Sent when the worker has sent nothing for a second: it is alive and between steps."""


@attrs.frozen
class LogLine:
    """A log record of the worker, re-emitted by the engine under the same logger name."""

    name: str
    level: int
    message: str


def encode(message: Any) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


class FrameDecoder:
    """Turns the bytes read from a pipe into whole messages."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        buffer = self._buffer
        buffer += data
        messages: list[Any] = []
        start = 0
        size = len(buffer)
        while size - start >= _HEADER.size:
            (length,) = _HEADER.unpack_from(buffer, start)
            end = start + _HEADER.size + length
            if end > size:
                break
            messages.append(pickle.loads(buffer[start + _HEADER.size : end]))
            start = end
        if start:
            del buffer[:start]
        return messages
