"""Sort generated text into content, reasoning and tool-call sections by their markers.

Markers (`<think>`, `</think>`, `<tool_call>`, `</tool_call>`) may span several tokens, so text
that could still become a marker is held back until it is decided. Each token is counted once,
in the section it was decided in; markers themselves are never emitted.
"""

from __future__ import annotations

import enum

import attrs


class Section(enum.Enum):
    CONTENT = "content"
    REASONING = "reasoning"
    TOOL_CALL = "tool_call"


THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
TOOL_OPEN = "<tool_call>"
TOOL_CLOSE = "</tool_call>"

# marker -> (section it leads to, section its own tokens count for)
_TRANSITIONS: dict[Section, dict[str, tuple[Section, Section]]] = {
    Section.CONTENT: {
        THINK_OPEN: (Section.REASONING, Section.REASONING),
        TOOL_OPEN: (Section.TOOL_CALL, Section.TOOL_CALL),
    },
    Section.REASONING: {THINK_CLOSE: (Section.CONTENT, Section.REASONING)},
    Section.TOOL_CALL: {TOOL_CLOSE: (Section.CONTENT, Section.TOOL_CALL)},
}


@attrs.frozen
class Piece:
    """Visible text of one section; `closes_tool_call` marks the end of a tool-call section."""

    section: Section
    text: str
    closes_tool_call: bool = False


@attrs.frozen
class ClassifiedStep:
    """What feeding one token produced: visible pieces in order, and decided token counts."""

    pieces: tuple[Piece, ...] = ()
    counts: tuple[tuple[Section, int], ...] = ()


def _held_suffix(text: str, markers: list[str]) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of a marker."""
    best = 0
    for marker in markers:
        for n in range(min(len(marker) - 1, len(text)), best, -1):
            if text.endswith(marker[:n]):
                best = n
                break
    return best


@attrs.define
class TokenClassifier:
    section: Section = Section.CONTENT
    _held_text: str = ""
    _held_tokens: int = 0

    @property
    def held_tokens(self) -> int:
        return self._held_tokens

    def feed(self, text: str, tokens: int = 1) -> ClassifiedStep:
        """Feed the text of `tokens` tokens (usually one)."""
        self._held_text += text
        self._held_tokens += tokens
        pieces: list[Piece] = []
        counts: list[tuple[Section, int]] = []
        while True:
            transitions = _TRANSITIONS[self.section]
            found = min(
                ((self._held_text.find(m), m) for m in transitions if m in self._held_text),
                default=None,
            )
            if found is None:
                break
            index, marker = found
            if index > 0:
                pieces.append(Piece(self.section, self._held_text[:index]))
            if self.section is Section.TOOL_CALL:
                pieces.append(Piece(Section.TOOL_CALL, "", closes_tool_call=True))
            next_section, counted_as = transitions[marker]
            if self._held_tokens:
                counts.append((counted_as, self._held_tokens))
                self._held_tokens = 0
            self.section = next_section
            self._held_text = self._held_text[index + len(marker) :]
        keep = _held_suffix(self._held_text, list(_TRANSITIONS[self.section]))
        visible = self._held_text[: len(self._held_text) - keep]
        if visible:
            pieces.append(Piece(self.section, visible))
        self._held_text = self._held_text[len(self._held_text) - keep :]
        if not keep and self._held_tokens:
            counts.append((self.section, self._held_tokens))
            self._held_tokens = 0
        return ClassifiedStep(tuple(pieces), tuple(counts))

    def flush(self) -> ClassifiedStep:
        """At the end: whatever is held is plain text of the current section."""
        pieces = (Piece(self.section, self._held_text),) if self._held_text else ()
        counts = ((self.section, self._held_tokens),) if self._held_tokens else ()
        self._held_text = ""
        self._held_tokens = 0
        return ClassifiedStep(pieces, counts)


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
        keep = _held_suffix(self._held, [*self.stops])
        out = self._held[: len(self._held) - keep]
        self._held = self._held[len(self._held) - keep :]
        return out, False

    def flush(self) -> str:
        out, self._held = self._held, ""
        return out
