"""gpt-oss "harmony": messages in channels, each `<|channel|>NAME<|message|>BODY<|end|>`.

`analysis` is reasoning, `final` (and a `commentary` preamble) is content, and a message
with a recipient (`to=functions.get_weather`, in the header before or after the channel) is a
tool call whose body is the JSON arguments, ended by `<|call|>`. Header text is never shown;
its tokens count for the section the header leads to. Until a header is read, the parser
cannot tell (`UNDETERMINED`). Output that is not harmony at all (a forced
`<tool_call>{json}</tool_call>` from the OpenAI layer's `tool_choice` grammar, or plain text)
goes to the Hermes parser instead.
"""

from __future__ import annotations

import json
import re

import attrs

from paddler.engine._classifier import ClassifiedStep, Piece, Section, held_suffix
from paddler.engine._formats._calls import Call, CallSyntaxError, json_calls
from paddler.engine._formats._format import ChatFormat, StreamParser
from paddler.engine._formats._hermes import THINKING, TOOL_OPEN
from paddler.engine._formats._machine import MarkerMachine

START = "<|start|>"
CHANNEL = "<|channel|>"
MESSAGE = "<|message|>"
END = "<|end|>"
CALL = "<|call|>"
RETURN = "<|return|>"

_BODY_ENDS = (END, CALL, RETURN, START)
_CHANNEL_NAME = re.compile(r"<\|channel\|>\s*([\w-]+)")
_RECIPIENT = re.compile(r"\bto=([^\s<]+)")
#: A header longer than this without any harmony marker means the model is not writing
#: harmony at all; its text is then shown as undeterminable.
_HEADER_LIMIT = 256


def header_section(header: str) -> tuple[Section, str]:
    """The section a message header leads to, and its recipient ('' when none)."""
    recipient = _RECIPIENT.search(header)
    if recipient is not None and not recipient.group(1).startswith("assistant"):
        return Section.TOOL_CALL, recipient.group(1)
    channel = _CHANNEL_NAME.search(header)
    if channel is None:
        return Section.UNDETERMINED, ""
    if channel.group(1) == "analysis":
        return Section.REASONING, ""
    return Section.CONTENT, ""


@attrs.define
class HarmonyMachine:
    _section: Section = Section.UNDETERMINED
    _in_header: bool = True
    _held_text: str = ""
    _held_tokens: int = 0
    _recipient: str = ""
    _tool_text: list[str] = attrs.Factory(list)
    _fallback: MarkerMachine | None = None

    @property
    def section(self) -> Section:
        return self._fallback.section if self._fallback is not None else self._section

    @property
    def held_tokens(self) -> int:
        if self._fallback is not None:
            return self._fallback.held_tokens
        return self._held_tokens

    def _not_harmony(self, text: str, tokens: int) -> ClassifiedStep:
        """Hand the rest of the output (and what the header held) to the Hermes parser."""
        self._fallback = MarkerMachine(THINKING, section=Section.UNDETERMINED)
        held, self._held_text = self._held_text, ""
        held_tokens, self._held_tokens = self._held_tokens, 0
        return self._fallback.feed(held + text, held_tokens + tokens)

    def prime(self, prompt: str) -> None:
        self.feed(prompt, 0)
        self._held_text = ""
        self._held_tokens = 0
        self._tool_text.clear()

    def _emit(self, pieces: list[Piece], text: str) -> None:
        if text:
            pieces.append(Piece(self._section, text))
            if self._section is Section.TOOL_CALL:
                self._tool_text.append(text)

    def _count(self, counts: list[tuple[Section, int]], section: Section) -> None:
        if self._held_tokens:
            counts.append((section, self._held_tokens))
            self._held_tokens = 0

    def feed(self, text: str, tokens: int = 1) -> ClassifiedStep:
        if self._fallback is not None:
            return self._fallback.feed(text, tokens)
        if self._in_header and TOOL_OPEN in self._held_text + text:
            before = (self._held_text + text).split(TOOL_OPEN, 1)[0]
            if "<|" not in before:  # a `<tool_call>` before any harmony header
                return self._not_harmony(text, tokens)
        self._held_text += text
        self._held_tokens += tokens
        pieces: list[Piece] = []
        counts: list[tuple[Section, int]] = []
        while True:
            if self._in_header:
                index = self._held_text.find(MESSAGE)
                if index < 0:
                    if "<|" not in self._held_text and len(self._held_text) > _HEADER_LIMIT:
                        step = self._not_harmony("", 0)
                        pieces += step.pieces
                        counts += step.counts
                        break
                    start = self._held_text.rfind(START)
                    if start > 0:  # a new message begins: forget the old header
                        self._held_text = self._held_text[start:]
                    break
                header = self._held_text[:index]
                self._held_text = self._held_text[index + len(MESSAGE) :]
                self._section, self._recipient = header_section(header[header.rfind(START) + 1 :])
                self._count(counts, self._section)
                self._in_header = False
                continue
            found = [(i, m) for m in _BODY_ENDS if (i := self._held_text.find(m)) >= 0]
            if not found:
                keep = held_suffix(self._held_text, _BODY_ENDS)
                self._emit(pieces, self._held_text[: len(self._held_text) - keep])
                self._held_text = self._held_text[len(self._held_text) - keep :]
                if not keep:
                    self._count(counts, self._section)
                break
            index, marker = min(found)
            self._emit(pieces, self._held_text[:index])
            self._count(counts, self._section)
            if self._section is Section.TOOL_CALL:
                self._close(pieces)
            self._held_text = self._held_text[index + len(marker) :]
            if marker == START:
                self._held_text = START + self._held_text
            self._in_header = True
            self._section = Section.UNDETERMINED
        return ClassifiedStep(tuple(pieces), tuple(counts))

    def _close(self, pieces: list[Piece]) -> None:
        body = "".join(self._tool_text)
        self._tool_text.clear()
        call_text = f"{self._recipient}\n{body}"
        pieces.append(Piece(Section.TOOL_CALL, "", closes_tool_call=True, call_text=call_text))

    def flush(self) -> ClassifiedStep:
        if self._fallback is not None:
            return self._fallback.flush()
        pieces: list[Piece] = []
        counts: list[tuple[Section, int]] = []
        if self._in_header:
            leftover = self._held_text
            if "<|" not in leftover:
                self._emit(pieces, leftover)
        else:
            self._emit(pieces, self._held_text)
        self._held_text = ""
        self._count(counts, self._section)
        if self._section is Section.TOOL_CALL:
            self._close(pieces)
        return ClassifiedStep(tuple(pieces), tuple(counts))


def read_calls(text: str) -> list[Call]:
    """`recipient\\nJSON arguments` as the parser closed it; `functions.` is dropped."""
    if text.lstrip().startswith("{"):  # a Hermes call, handed to the Hermes parser
        return json_calls(text)
    recipient, _, body = text.partition("\n")
    name = recipient.removeprefix("functions.")
    try:
        arguments = json.loads(body) if body.strip() else {}
    except json.JSONDecodeError as exc:
        raise CallSyntaxError(f"Tool call is not valid JSON: {exc}") from exc
    return [{"name": name, "arguments": arguments}]


def _parser(tools: bool) -> StreamParser:
    return HarmonyMachine()


HARMONY = ChatFormat("harmony", _parser, read_calls)
