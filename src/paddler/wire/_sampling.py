"""Per-request sampling overrides: our extension of the agent ``Request`` envelope.

Paddler 4 has no per-request sampling (every request uses the cluster's
``InferenceParameters``); the OpenAI layer needs it. A balancer writes
``"sampling_overrides":{...}`` into ``{"Request":{...}}`` only when a request carries some, so
every other frame stays exactly Paddler's. Inside the object, unset fields are left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from attrs import field, frozen

__all__ = ["SamplingOverrides", "SamplingOverridesLike", "sampling_overrides_from"]


def _strings(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@frozen
class SamplingOverrides:
    """Fields that win over the cluster's parameters for one request; ``None`` keeps them.

    ``seed`` fixes the sampler's seed (llama.cpp seeds are 32-bit); ``stop`` ends generation
    when the content contains one of the strings (the stop text itself is not emitted).
    """

    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    stop: tuple[str, ...] = field(default=(), converter=_strings)


class SamplingOverridesLike(Protocol):
    """Any record with the fields of ``SamplingOverrides`` (``paddler.engine`` has one)."""

    @property
    def temperature(self) -> float | None: ...
    @property
    def top_p(self) -> float | None: ...
    @property
    def seed(self) -> int | None: ...
    @property
    def presence_penalty(self) -> float | None: ...
    @property
    def frequency_penalty(self) -> float | None: ...
    @property
    def stop(self) -> tuple[str, ...]: ...


def sampling_overrides_from(value: SamplingOverridesLike | None) -> SamplingOverrides | None:
    """This wire class from any object with the same attributes (the engine's record, say).

    ``None`` stays ``None``; a ``SamplingOverrides`` is returned as is.
    """
    if value is None or isinstance(value, SamplingOverrides):
        return value
    return SamplingOverrides(
        temperature=value.temperature,
        top_p=value.top_p,
        seed=value.seed,
        presence_penalty=value.presence_penalty,
        frequency_penalty=value.frequency_penalty,
        stop=value.stop,
    )
