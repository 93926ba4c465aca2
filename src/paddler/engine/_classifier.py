"""What every chat-format parser produces: sections, visible pieces and decided token counts.

A parser (one per model family, in `paddler.engine._formats`) sorts generated text into
content, reasoning and tool-call sections by the family's markers. Markers may span several
tokens, so text that could still become a marker is held back until it is decided. Each token
is counted once, in the section it was decided in; markers themselves are never emitted.
`UNDETERMINED` is the section a parser is in while it cannot yet tell (Paddler's
`UndeterminableToken`). The stop-string filter lives here too: it works on visible text.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs


class Section(enum.Enum):
    CONTENT = "content"
    REASONING = "reasoning"
    TOOL_CALL = "tool_call"
    UNDETERMINED = "undeterminable"


@attrs.frozen
class Piece:
    """Visible text of one section.

    A piece with `closes_tool_call` ends a tool-call section; its `call_text` is the whole
    call as the format's call parser reads it (visible text, plus what the format keeps in
    its markers, such as gpt-oss's recipient).
    """

    section: Section
    text: str
    closes_tool_call: bool = False
    call_text: str = ""


@attrs.frozen
class ClassifiedStep:
    """What feeding one token produced: visible pieces in order, and decided token counts."""

    pieces: tuple[Piece, ...] = ()
    counts: tuple[tuple[Section, int], ...] = ()


def held_suffix(text: str, markers: Iterable[str]) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of a marker."""
    best = 0
    for marker in markers:
        for n in range(min(len(marker) - 1, len(text)), best, -1):
            if text.endswith(marker[:n]):
                best = n
                break
    return best


@attrs.define
class StopStringFilter:
    """Holds back content that might start a stop string; reports when one appears."""

    stops: tuple[str, ...]
    _held: str = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Return (text safe to emit, whether a stop string was found)."""
        if not self.stops:
            return text, False
        self._held += text
        hits = [i for i in (self._held.find(s) for s in self.stops) if i >= 0]
        if hits:
            out = self._held[: min(hits)]
            self._held = ""
            return out, True
        keep = held_suffix(self._held, self.stops)
        out = self._held[: len(self._held) - keep]
        self._held = self._held[len(self._held) - keep :]
        return out, False

    def flush(self) -> str:
        out, self._held = self._held, ""
        return out
