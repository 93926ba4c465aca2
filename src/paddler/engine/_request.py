"""One generation request while a slot serves it: sampling, classification, usage, ending."""

from __future__ import annotations

import codecs
from collections.abc import Mapping

import attrs
import jsonschema.protocols

from paddler.engine._classifier import Piece, Section, StopStringFilter
from paddler.engine._formats import StreamParser, json_calls
from paddler.engine._formats._calls import CallReader
from paddler.engine._llama import LlamaModel
from paddler.engine._multimodal import ImageSpan
from paddler.engine._sampling import RequestSampler
from paddler.engine._tool_calls import parse_tool_calls
from paddler.wire import (
    ContentToken,
    Done,
    GeneratedTokenResult,
    ReasoningToken,
    TokenUsage,
    ToolCallToken,
    UndeterminableToken,
)


@attrs.define(eq=False)
class ActiveRequest:
    """Mutated only on the scheduler thread; `outputs` collects this step's results.

    ``prompt`` has one key per position: token ids, and negative keys where an image of
    ``images`` goes (see `_multimodal`).
    """

    id: int
    prompt: list[int]
    max_tokens: int
    sampler: RequestSampler
    classifier: StreamParser
    stop_filter: StopStringFilter
    tool_validators: Mapping[str, jsonschema.protocols.Validator | None] | None
    #: The chat format's reader of a tool-call section's text.
    read_calls: CallReader = json_calls
    cached_prompt_tokens: int = 0
    #: Tokens at the end of ``prompt`` that are a continuation (an answer's start that another
    #: agent streamed): generated tokens, not prompt tokens (``content_tokens`` counts them).
    continued_tokens: int = 0
    ingested: int = 0
    pending_token: int = -1
    finished: bool = False
    content_tokens: int = 0
    reasoning_tokens: int = 0
    tool_call_tokens: int = 0
    undeterminable_tokens: int = 0
    outputs: list[GeneratedTokenResult] = attrs.Factory(list)
    images: list[ImageSpan] = attrs.Factory(list)
    _next_image: int = 0
    _decoder: codecs.IncrementalDecoder = attrs.Factory(
        lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )
    _visible_kind: Section = Section.CONTENT

    @property
    def input_image_tokens(self) -> int:
        return sum(span.n_tokens for span in self.images)

    @property
    def prompt_tokens(self) -> int:
        """Text tokens plus image tokens (an image may take fewer positions than tokens)."""
        positions = len(self.prompt) - self.continued_tokens
        return positions - sum(s.n_pos for s in self.images) + self.input_image_tokens

    def pending_image(self) -> ImageSpan | None:
        """The image that ingestion has reached and that is not evaluated yet."""
        if self._next_image < len(self.images):
            span = self.images[self._next_image]
            if span.start == self.ingested:
                return span
        return None

    def text_end(self) -> int:
        """Where the text run being ingested ends: the next image, or the prompt's end."""
        if self._next_image < len(self.images):
            return self.images[self._next_image].start
        return len(self.prompt)

    def image_evaluated(self) -> ImageSpan:
        """Ingestion has passed the pending image (its KV cells are filled)."""
        span = self.images[self._next_image]
        self._next_image += 1
        self.ingested = span.end
        span.chunk.free()
        return span

    @property
    def usage(self) -> TokenUsage:
        return TokenUsage(
            prompt_tokens=self.prompt_tokens,
            cached_prompt_tokens=min(self.cached_prompt_tokens, self.prompt_tokens),
            input_image_tokens=self.input_image_tokens,
            input_audio_tokens=0,
            content_tokens=self.content_tokens,
            reasoning_tokens=self.reasoning_tokens,
            tool_call_tokens=self.tool_call_tokens,
            undeterminable_tokens=self.undeterminable_tokens,
        )

    @property
    def generated_tokens(self) -> int:
        return (
            self.content_tokens
            + self.reasoning_tokens
            + self.tool_call_tokens
            + self.undeterminable_tokens
        )

    def _completion_tokens(self) -> int:
        """Tokens that count against `max_tokens` (tool-call tokens do not)."""
        held = self.classifier.held_tokens
        if self.classifier.section is Section.TOOL_CALL:
            held = 0
        return self.content_tokens + self.reasoning_tokens + self.undeterminable_tokens + held

    def budget_exhausted(self) -> bool:
        return self._completion_tokens() >= self.max_tokens

    def accept_token(self, token: int, model: LlamaModel) -> bool:
        """Process a sampled token; True when the request is finished (results queued)."""
        if model.is_eog(token):
            self.finish()
            return True
        text = self._decoder.decode(model.piece(token))
        step = self.classifier.feed(text)
        self._count(step.counts)
        if self._emit(step.pieces):
            self.finish(flush=False)
            return True
        if self.budget_exhausted():
            self.finish()
            return True
        return False

    def _count(self, counts: tuple[tuple[Section, int], ...]) -> None:
        for section, n in counts:
            if section is Section.CONTENT:
                self.content_tokens += n
            elif section is Section.REASONING:
                self.reasoning_tokens += n
            elif section is Section.UNDETERMINED:
                self.undeterminable_tokens += n
            else:
                self.tool_call_tokens += n

    def _answer(self, text: str) -> None:
        if text:
            kind = ContentToken if self._visible_kind is Section.CONTENT else UndeterminableToken
            self.outputs.append(kind(text))

    def _emit(self, pieces: tuple[Piece, ...]) -> bool:
        """Queue visible pieces; True when a stop string ended the request."""
        for piece in pieces:
            if piece.section in (Section.CONTENT, Section.UNDETERMINED):
                if piece.section is not self._visible_kind:
                    self._answer(self.stop_filter.flush())
                    self._visible_kind = piece.section
                text, stopped = self.stop_filter.feed(piece.text)
                self._answer(text)
                if stopped:
                    return True
            elif piece.section is Section.REASONING:
                if piece.text:
                    self.outputs.append(ReasoningToken(piece.text))
            else:
                if piece.text:
                    self.outputs.append(ToolCallToken(piece.text))
                if piece.closes_tool_call:
                    self._flush_tool_call(piece.call_text)
        return False

    def _flush_tool_call(self, text: str) -> None:
        if self.tool_validators is not None and text.strip():
            self.outputs.append(parse_tool_calls(text, self.tool_validators, self.read_calls))

    def finish(self, terminal: GeneratedTokenResult | None = None, *, flush: bool = True) -> None:
        """Queue the last results and the terminal (`Done` with usage unless given)."""
        if self.finished:
            return
        self.finished = True
        if flush and terminal is None:
            tail = self._decoder.decode(b"", final=True)
            pieces: tuple[Piece, ...] = ()
            if tail:
                step = self.classifier.feed(tail, tokens=0)  # bytes of tokens already counted
                self._count(step.counts)
                pieces = step.pieces
            step = self.classifier.flush()
            self._count(step.counts)
            if not self._emit(pieces + step.pieces):
                self._answer(self.stop_filter.flush())
        else:
            self._count(self.classifier.flush().counts)
        self.outputs.append(terminal if terminal is not None else Done(self.usage))
        self.sampler.free()
        for span in self.images:
            span.chunk.free()
