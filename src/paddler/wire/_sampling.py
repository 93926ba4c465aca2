"""Per-request sampling overrides: our extension of the agent ``Request`` envelope.

Paddler 4 has no per-request sampling (every request uses the cluster's
``InferenceParameters``); the OpenAI layer needs it. A balancer writes
``"sampling_overrides":{...}`` into ``{"Request":{...}}`` only when a request carries some, so
every other frame stays exactly Paddler's. Inside the object, unset fields are left out.

This one record is what the OpenAI layer builds, the balancer sends and the engine applies.
"""

from __future__ import annotations

from collections.abc import Iterable

from attrs import field, frozen

__all__ = ["SamplingOverrides"]


def _strings(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@frozen
class SamplingOverrides:
    """Fields that win over the cluster's parameters for one request; ``None`` keeps them.

    ``seed`` fixes the sampler's seed (llama.cpp seeds are 32-bit); ``stop`` ends generation
    when the content contains one of the strings (the stop text itself is not emitted).
    ``forced_tools`` names tools of the request's ``tools``: the answer must then be one call
    to one of them (OpenAI's ``tool_choice: "required"`` lists every tool, a named function
    lists that one). The engine builds the grammar from those tools' schemas, so the balancer
    never converts a schema.
    """

    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    stop: tuple[str, ...] = field(default=(), converter=_strings)
    forced_tools: tuple[str, ...] = field(default=(), converter=_strings)
