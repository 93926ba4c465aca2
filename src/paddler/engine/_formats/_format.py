"""A chat format: a name, a streaming parser per request, and the reader of its calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import attrs

from paddler.engine._classifier import ClassifiedStep, Section
from paddler.engine._formats._calls import CallReader


class StreamParser(Protocol):
    """What a request's parser offers the engine (one instance per request)."""

    @property
    def section(self) -> Section: ...

    @property
    def held_tokens(self) -> int: ...

    def prime(self, prompt: str) -> None: ...

    def feed(self, text: str, tokens: int = 1) -> ClassifiedStep: ...

    def flush(self) -> ClassifiedStep: ...


@attrs.frozen
class ChatFormat:
    """One family's format. `new_parser(tools=...)` says whether the request offered tools."""

    name: str
    new_parser: Callable[[bool], StreamParser] = attrs.field(repr=False)
    read_calls: CallReader = attrs.field(repr=False)

    def parser(self, *, tools: bool, prompt: str | None = None) -> StreamParser:
        """A fresh parser, primed with the rendered prompt when one is given."""
        parser = self.new_parser(tools)
        if prompt:
            parser.prime(prompt)
        return parser
