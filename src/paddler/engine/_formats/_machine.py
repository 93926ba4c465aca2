"""The incremental state machine most chat formats share: sections switched by text markers.

A format is a table: in each section, which markers lead where. A tool call opened by a
marker has a `ToolBody` saying how it ends: at a closing marker outside JSON strings, and/or
where its JSON value ends (Llama's `<|python_tag|>`, Mistral's `[TOOL_CALLS]`). Formats whose
models also answer with a bare JSON call (Llama 3.x, Gemma 3) set `probe_json`: a message
that starts with `{` is held until it is decided, like Paddler's JSON probe.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

import attrs

from paddler.engine._classifier import ClassifiedStep, Piece, Section, held_suffix
from paddler.engine._formats._json_scan import JsonScan


@attrs.frozen
class ToolBody:
    """How a tool-call section that a marker opened ends."""

    closes: tuple[str, ...] = ()
    ends_with_json: bool = False
    json_after: str | None = None


@attrs.frozen
class Marker:
    """In some section, `text` leads to `to`; its own tokens count for `counts_as`."""

    text: str
    to: Section
    counts_as: Section
    body: ToolBody | None = None


Table = Mapping[Section, tuple[Marker, ...]]

_PROBE_START = re.compile(r"\s*\{\s*(\S)")


@attrs.define
class MarkerMachine:
    """One request's parser; `prime` it with the prompt, then `feed` each token's text."""

    table: Table
    section: Section = Section.UNDETERMINED
    probe_json: bool = False
    #: Markers that end a turn in a rendered prompt; while priming, they reset the section.
    turn_ends: tuple[str, ...] = ()
    _held_text: str = ""
    _held_tokens: int = 0
    _body: ToolBody | None = None
    _scan: JsonScan = attrs.Factory(JsonScan)
    _tool_text: list[str] = attrs.Factory(list)
    _segment_start: bool = True
    _probe: JsonScan | None = None
    _probe_seen: int = 0
    _priming: bool = False
    _undecided: Section = Section.UNDETERMINED

    def __attrs_post_init__(self) -> None:
        self._undecided = self.section

    @property
    def held_tokens(self) -> int:
        return self._held_tokens

    def prime(self, prompt: str) -> None:
        """Run the rendered prompt through the machine: its last markers decide the start."""
        self._priming = True
        try:
            self.feed(prompt, 0)
        finally:
            self._priming = False
        self._held_text = ""
        self._held_tokens = 0
        self._tool_text.clear()
        self._segment_start = True

    def _markers(self) -> tuple[Marker, ...]:
        if self.section is Section.TOOL_CALL:
            closes = self._body.closes if self._body else ()
            markers = tuple(Marker(c, Section.CONTENT, Section.TOOL_CALL) for c in closes)
        else:
            markers = self.table.get(self.section) or self.table.get(Section.CONTENT, ())
        if self._priming:
            markers += tuple(Marker(t, self._undecided, self.section) for t in self.turn_ends)
        return markers

    def _next_event(self, markers: tuple[Marker, ...]) -> tuple[int, int, Marker] | None:
        """(start, end, marker) of the earliest marker (or JSON end) in the held text."""
        text = self._held_text
        best: tuple[int, int, Marker] | None = None
        in_tool = self.section is Section.TOOL_CALL
        for marker in markers:
            if in_tool:
                index = self._scan.find_outside_strings(text, marker.text)
            else:
                found = text.find(marker.text)
                index = found if found >= 0 else None
            if index is not None and (best is None or index < best[0]):
                best = (index, index + len(marker.text), marker)
        if in_tool and self._body is not None and self._body.ends_with_json:
            end = self._scan.copy().feed(text)
            if end is not None and (best is None or end <= best[0]):
                best = (end, end, Marker("", Section.CONTENT, Section.TOOL_CALL))
        return best

    def _emit(self, pieces: list[Piece], text: str) -> None:
        if not text:
            return
        pieces.append(Piece(self.section, text))
        if self.section is Section.TOOL_CALL:
            self._tool_text.append(text)
            self._scan.feed(text)
        elif text.strip():
            self._segment_start = False

    def _close_tool_call(self, pieces: list[Piece]) -> None:
        call_text = "".join(self._tool_text)
        self._tool_text.clear()
        pieces.append(Piece(Section.TOOL_CALL, "", closes_tool_call=True, call_text=call_text))

    def _enter(self, marker: Marker) -> None:
        self.section = marker.to
        self._segment_start = True
        if marker.to is Section.TOOL_CALL:
            self._body = marker.body or ToolBody()
            self._scan = JsonScan(after=self._body.json_after)
            self._tool_text.clear()

    def feed(self, text: str, tokens: int = 1) -> ClassifiedStep:
        """Feed the text of `tokens` tokens (usually one)."""
        self._held_text += text
        self._held_tokens += tokens
        pieces: list[Piece] = []
        counts: list[tuple[Section, int]] = []
        while True:
            if self._probe is not None:
                if not self._advance_probe(pieces, counts):
                    return ClassifiedStep(tuple(pieces), tuple(counts))
                continue
            if self._probe_can_start():
                self._probe = JsonScan()
                self._probe_seen = 0
                continue
            markers = self._markers()
            event = self._next_event(markers)
            if event is None:
                break
            start, end, marker = event
            self._emit(pieces, self._held_text[:start])
            if self._held_tokens:
                counts.append((marker.counts_as, self._held_tokens))
                self._held_tokens = 0
            if self.section is Section.TOOL_CALL:
                self._close_tool_call(pieces)
            self._held_text = self._held_text[end:]
            self._enter(marker)
        keep = held_suffix(self._held_text, (m.text for m in markers))
        self._emit(pieces, self._held_text[: len(self._held_text) - keep])
        self._held_text = self._held_text[len(self._held_text) - keep :]
        if not keep and self._held_tokens:
            counts.append((self.section, self._held_tokens))
            self._held_tokens = 0
        return ClassifiedStep(tuple(pieces), tuple(counts))

    def _probe_can_start(self) -> bool:
        return (
            self.probe_json
            and not self._priming
            and self._segment_start
            and self.section in (Section.CONTENT, Section.UNDETERMINED)
            and self._held_text.lstrip().startswith("{")
        )

    def _advance_probe(self, pieces: list[Piece], counts: list[tuple[Section, int]]) -> bool:
        """Decide a held JSON message if possible; False while it is still undecided."""
        assert self._probe is not None
        text = self._held_text
        early = _PROBE_START.match(text)
        failed = early is not None and early.group(1) not in '"}'
        end: int | None = None
        if not failed:
            offset = self._probe.feed(text[self._probe_seen :])
            if offset is not None:
                end = self._probe_seen + offset
            self._probe_seen = len(text)
            if end is None:
                return False
            try:
                value = json.loads(text[:end])
            except json.JSONDecodeError:
                value = None
            failed = not (isinstance(value, dict) and isinstance(value.get("name"), str))
        self._probe = None
        if failed or end is None:
            self._segment_start = False  # plain text after all: markers as usual
            return True
        call = text[:end]
        pieces.append(Piece(Section.TOOL_CALL, call))
        pieces.append(Piece(Section.TOOL_CALL, "", closes_tool_call=True, call_text=call))
        if self._held_tokens:
            counts.append((Section.TOOL_CALL, self._held_tokens))
            self._held_tokens = 0
        self._held_text = text[end:]
        self.section = Section.CONTENT
        self._segment_start = True
        return True

    def flush(self) -> ClassifiedStep:
        """At the end: whatever is held is plain text of the current section."""
        self._probe = None
        pieces: list[Piece] = []
        held, self._held_text = self._held_text, ""
        self._emit(pieces, held)
        counts = ((self.section, self._held_tokens),) if self._held_tokens else ()
        self._held_tokens = 0
        if self.section is Section.TOOL_CALL:
            self._close_tool_call(pieces)
            self.section = Section.CONTENT
        return ClassifiedStep(tuple(pieces), counts)
