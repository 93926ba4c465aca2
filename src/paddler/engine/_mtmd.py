"""The one adapter over llama.cpp's multimodal library (mtmd), beside `_llama.py`.

A `Projector` is a loaded mmproj GGUF bound to the text model. It turns a prompt with media
markers plus decoded images into text token runs and image chunks (`tokenize`), and evaluates
one image chunk into a sequence's KV cache (`evaluate`: the vision encoder, then the image's
embeddings decoded in `n_batch` sub-batches). Everything that touches `llama_cpp.mtmd_cpp`
lives here. Not thread-safe: only the engine worker's main thread uses these objects.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import llama_cpp
from llama_cpp import mtmd_cpp

from paddler.engine._llama import LlamaContext, LlamaError, LlamaModel, ensure_backend

logger = logging.getLogger("paddler.engine.mtmd")

_CHUNK_TEXT = 0
_CHUNK_IMAGE = 1
_log_callback: Any = None  # kept alive for the whole process: mtmd holds the pointer


def _route_log(level: int, text: bytes | None, _user_data: Any) -> None:
    if text and logger.isEnabledFor(logging.DEBUG):
        logger.debug("%s", text.decode("utf-8", "replace").rstrip())


def _ensure_logging() -> None:
    """Send mtmd's and clip's chatter to `logging` at DEBUG instead of stderr."""
    global _log_callback
    if _log_callback is None:
        _log_callback = llama_cpp.llama_log_callback(_route_log)
        mtmd_cpp.mtmd_log_set(_log_callback, ctypes.c_void_p(0))
        mtmd_cpp.mtmd_helper_log_set(_log_callback, ctypes.c_void_p(0))


@attrs.frozen
class RgbImage:
    """Decoded pixels, row-major RGB, 3 bytes per pixel."""

    width: int
    height: int
    pixels: bytes


class ImageChunk:
    """One image of a prompt, tokenized: an owned copy of mtmd's chunk."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self.n_tokens: int = mtmd_cpp.mtmd_input_chunk_get_n_tokens(handle)
        #: Positions it takes in the sequence (fewer than n_tokens with M-RoPE).
        self.n_pos: int = mtmd_cpp.mtmd_input_chunk_get_n_pos(handle)

    @property
    def handle(self) -> Any:
        return self._handle

    def free(self) -> None:
        if self._handle:
            mtmd_cpp.mtmd_input_chunk_free(self._handle)
            self._handle = None

    def __del__(self) -> None:  # a request refused after tokenizing never reaches a slot
        self.free()

    def __repr__(self) -> str:
        return f"<ImageChunk [tokens={self.n_tokens}, positions={self.n_pos}]>"


class Projector:
    """A multimodal projection (mmproj) loaded for one text model."""

    def __init__(self, handle: Any, path: Path) -> None:
        self._handle = handle
        self.path = path
        self.marker: str = (mtmd_cpp.mtmd_default_marker() or b"<__media__>").decode()
        self.supports_vision = bool(mtmd_cpp.mtmd_support_vision(handle))

    @classmethod
    def load(cls, path: Path, model: LlamaModel, *, n_threads: int) -> Projector:
        """Load ``path`` for ``model``; `LlamaError` when mtmd refuses it."""
        ensure_backend()
        _ensure_logging()
        params = mtmd_cpp.mtmd_context_params_default()
        params.use_gpu = False
        params.print_timings = False
        params.n_threads = n_threads
        handle = mtmd_cpp.mtmd_init_from_file(str(path).encode(), model.handle, params)
        if not handle:
            raise LlamaError(
                f"llama.cpp could not load the multimodal projection {path} for this model "
                "(not an mmproj GGUF, or made for another model)"
            )
        projector = cls(handle, path)
        if not projector.supports_vision:
            projector.free()
            raise LlamaError(f"the multimodal projection {path} has no vision encoder")
        return projector

    def tokenize(self, text: str, images: Sequence[RgbImage]) -> list[list[int] | ImageChunk]:
        """Split ``text`` at its media markers: runs of text tokens and one chunk per image.

        The model's BOS is added as for plain prompts (``add_special``). Raises `LlamaError`
        when the marker count does not match the images or an image cannot be preprocessed.
        """
        bitmaps = []
        chunks = mtmd_cpp.mtmd_input_chunks_init()
        try:
            for image in images:
                buffer = (ctypes.c_uint8 * len(image.pixels)).from_buffer_copy(image.pixels)
                bitmap = mtmd_cpp.mtmd_bitmap_init(image.width, image.height, buffer)
                if not bitmap:
                    raise LlamaError(f"mtmd could not take a {image.width}x{image.height} image")
                bitmaps.append(bitmap)
            data = text.encode("utf-8")
            text_input = mtmd_cpp.mtmd_input_text(
                text=data, text_len=len(data), add_special=True, parse_special=True
            )
            array = (mtmd_cpp.mtmd_bitmap_p_ctypes * max(len(bitmaps), 1))(*bitmaps)
            rc = mtmd_cpp.mtmd_tokenize(
                self._handle, chunks, ctypes.byref(text_input), array, len(bitmaps)
            )
            if rc == 1:
                raise LlamaError(
                    f"the prompt has a different number of media markers than its "
                    f"{len(bitmaps)} image(s)"
                )
            if rc != 0:
                raise LlamaError(f"mtmd could not preprocess the image(s) (status {rc})")
            return self._read_chunks(chunks)
        finally:
            mtmd_cpp.mtmd_input_chunks_free(chunks)
            for bitmap in bitmaps:
                mtmd_cpp.mtmd_bitmap_free(bitmap)

    @staticmethod
    def _read_chunks(chunks: Any) -> list[list[int] | ImageChunk]:
        out: list[list[int] | ImageChunk] = []
        try:
            for i in range(mtmd_cpp.mtmd_input_chunks_size(chunks)):
                chunk = mtmd_cpp.mtmd_input_chunks_get(chunks, i)
                kind = mtmd_cpp.mtmd_input_chunk_get_type(chunk)
                if kind == _CHUNK_TEXT:
                    n = ctypes.c_size_t(0)
                    tokens = mtmd_cpp.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(n))
                    out.append(list(tokens[: n.value]) if n.value else [])
                elif kind == _CHUNK_IMAGE:
                    copy = mtmd_cpp.mtmd_input_chunk_copy(chunk)
                    if not copy:
                        raise LlamaError("mtmd could not copy an image chunk")
                    out.append(ImageChunk(copy))
                else:
                    raise LlamaError(f"unexpected mtmd chunk type {kind} (audio is not served)")
        except BaseException:
            for part in out:
                if isinstance(part, ImageChunk):
                    part.free()
            raise
        return out

    def evaluate(
        self, ctx: LlamaContext, chunk: ImageChunk, *, position: int, seq_id: int, n_batch: int
    ) -> str | None:
        """Encode the image and decode its embeddings into ``seq_id`` from ``position``.

        Returns None on success, else what went wrong (the KV cache may hold part of it).
        """
        rc = mtmd_cpp.mtmd_encode_chunk(self._handle, chunk.handle)
        if rc != 0:
            return f"the vision encoder failed (status {rc})"
        embeddings = mtmd_cpp.mtmd_get_output_embd(self._handle)
        if not embeddings:
            return "the vision encoder produced no embeddings"
        new_position = llama_cpp.llama_pos(0)
        rc = mtmd_cpp.mtmd_helper_decode_image_chunk(
            self._handle,
            ctx.handle,
            chunk.handle,
            embeddings,
            position,
            seq_id,
            n_batch,
            ctypes.byref(new_position),
            mtmd_cpp.mtmd_helper_post_decode_callback(),  # NULL: no callback
            None,
        )
        if rc != 0:
            return f"llama.cpp could not decode the image's embeddings (status {rc})"
        return None

    def free(self) -> None:
        if self._handle:
            mtmd_cpp.mtmd_free(self._handle)
            self._handle = None
