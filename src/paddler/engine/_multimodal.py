"""A prompt with images, ready for a slot: text tokens, and image chunks at their positions.

The rendered prompt carries one media marker per image part. The images are decoded
(`_images`), and mtmd splits the prompt at the markers into runs of text tokens and one chunk
per image. The request's ``prompt`` then has one entry per position: text token ids, and for
the positions an image fills, negative keys that no other prompt ever has. Slots match
prompts by token prefix, so a cached image never passes for text, nor for another image
(even the same one again): the prompt cache stops at the first image.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import attrs

from paddler.engine._images import ImageError, decode_image_url
from paddler.engine._llama import LlamaError, LlamaModel
from paddler.engine._mtmd import ImageChunk, Projector, RgbImage
from paddler.wire import (
    ChatTemplateError,
    ConversationMessage,
    GeneratedTokenResult,
    ImageDecodingFailed,
    ImageExceedsBatchSize,
    ImageUrlPart,
)

_image_keys = itertools.count(-1, -1)  # the worker's one scheduler thread takes them


@attrs.define(eq=False)
class ImageSpan:
    """One image of a prompt: where it starts, and what it fills once evaluated."""

    start: int
    chunk: ImageChunk

    @property
    def n_pos(self) -> int:
        return self.chunk.n_pos

    @property
    def n_tokens(self) -> int:
        return self.chunk.n_tokens

    @property
    def end(self) -> int:
        return self.start + self.chunk.n_pos


@attrs.frozen
class MultimodalPrompt:
    keys: list[int]
    images: list[ImageSpan]


def image_urls(messages: Sequence[ConversationMessage]) -> list[str]:
    """The URLs of a conversation's image parts, in prompt order."""
    return [
        part.image_url.url
        for message in messages
        if not isinstance(message.content, str)
        for part in message.content
        if isinstance(part, ImageUrlPart)
    ]


def tokenize_with_images(
    projector: Projector,
    model: LlamaModel,
    text: str,
    urls: Sequence[str],
    *,
    max_side: int,
    n_batch: int,
) -> MultimodalPrompt | GeneratedTokenResult:
    """The prompt's keys and image spans, or the terminal result that refuses it."""
    images: list[RgbImage] = []
    for index, url in enumerate(urls):
        try:
            images.append(decode_image_url(url, max_side))
        except ImageError as exc:
            which = f"image {index + 1} of {len(urls)}" if len(urls) > 1 else "the image"
            return ImageDecodingFailed(f"Cannot use {which}: {exc}")
    try:
        parts = projector.tokenize(text, images)
    except LlamaError as exc:
        return ChatTemplateError(
            f"The prompt does not fit its images: {exc} (a text part may contain the media "
            f"marker {projector.marker}, or the chat template dropped an image)"
        )
    keys: list[int] = []
    spans: list[ImageSpan] = []
    too_big: ImageExceedsBatchSize | None = None
    for part in parts:
        if isinstance(part, ImageChunk):
            if part.n_tokens > n_batch and too_big is None:
                too_big = ImageExceedsBatchSize(image_tokens=part.n_tokens, n_batch=n_batch)
            spans.append(ImageSpan(start=len(keys), chunk=part))
            keys.extend(next(_image_keys) for _ in range(part.n_pos))
        else:
            if not keys and model.adds_bos and part[:2] == [model.bos, model.bos]:
                part = part[1:]  # the template wrote a BOS, and tokenizing added another
            keys.extend(part)
    if too_big is None and spans and spans[-1].end == len(keys):
        return _free(spans, ChatTemplateError("The prompt ends with an image; text must follow"))
    if too_big is not None:
        return _free(spans, too_big)
    return MultimodalPrompt(keys=keys, images=spans)


def _free(spans: list[ImageSpan], result: GeneratedTokenResult) -> GeneratedTokenResult:
    for span in spans:
        span.chunk.free()
    return result
