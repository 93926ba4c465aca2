"""Loading in the engine worker: model, metadata, chat template, context, warm-up (spec §6.1)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import attrs

from paddler.engine._errors import (
    ModelCannotBeLoaded,
    MultimodalProjectionCannotBeLoaded,
    SlotCannotStart,
    UnableToFindChatTemplate,
)
from paddler.engine._llama import Batch, LlamaContext, LlamaError, LlamaModel
from paddler.engine._mtmd import Projector
from paddler.engine._template import ChatTemplate
from paddler.wire import InferenceParameters


def default_threads() -> int:
    return max(2, (os.cpu_count() or 2) // 2)


@attrs.frozen
class LoadedModel:
    """What `load_model` returns: the model, one context for every slot, the chat template
    (``None`` in embeddings mode without an override), the GGUF metadata, the projection."""

    model: LlamaModel
    ctx: LlamaContext
    template: ChatTemplate | None
    metadata: dict[str, str]
    projector: Projector | None = None

    def free(self) -> None:
        """Release the context, the projection and the model (no scheduler may use them)."""
        self.ctx.free()
        if self.projector is not None:
            self.projector.free()
        self.model.free()


def load_model(
    path: str | os.PathLike[str],
    parameters: InferenceParameters,
    *,
    slots: int,
    template_override: str | None = None,
    progress: Callable[[float], bool] | None = None,
    cancelled: threading.Event | None = None,
    extra_buffer_types: bool = True,
    threads: int | None = None,
    projector_path: str | os.PathLike[str] | None = None,
) -> LoadedModel | None:
    """The whole load, blocking, in this process (`LlamaEngine.load` runs it in a worker);
    None when `cancelled` was set. Raises a `ModelLoadError` subclass when it fails.

    `progress(fraction)` may return False to stop the model load.
    `extra_buffer_types=False` turns off llama.cpp's optional CPU kernels (AMX, weight
    repacking), as `llama-server --no-repack` does: they fault on some CPUs and VMs.
    `projector_path` is a multimodal projection (mmproj) loaded through mtmd for images.
    """
    path = Path(path)
    cancelled = cancelled or threading.Event()
    if not path.is_file():
        raise ModelCannotBeLoaded(f"model file does not exist: {path}")
    try:
        model = LlamaModel.load(
            path,
            n_gpu_layers=parameters.n_gpu_layers,
            on_progress=progress or (lambda _fraction: True),
            extra_buffer_types=extra_buffer_types,
        )
    except LlamaError as exc:
        if cancelled.is_set():
            return None
        raise ModelCannotBeLoaded(str(exc)) from exc
    projector: Projector | None = None
    try:
        metadata = model.metadata()
        template: ChatTemplate | None = None
        source = template_override or metadata.get("tokenizer.chat_template")
        if template_override is not None or not parameters.enable_embeddings:
            if not source:
                raise UnableToFindChatTemplate(f"{path} has no chat template and none was given")
            template = ChatTemplate(
                source,
                bos_token=model.token_text(model.bos),
                eos_token=model.token_text(model.eos),
            )
        if cancelled.is_set():
            model.free()
            return None
        n_threads = threads or default_threads()
        projector = _load_projector(
            Path(projector_path) if projector_path is not None else None, model, n_threads
        )
        try:
            ctx = LlamaContext(
                model,
                n_ctx=parameters.context_size,
                n_batch=parameters.n_batch,
                n_seq_max=slots,
                n_threads=n_threads,
                type_k=parameters.k_cache_dtype.value,
                type_v=parameters.v_cache_dtype.value,
                embeddings=parameters.enable_embeddings,
                pooling=parameters.pooling_type.value,
            )
        except (LlamaError, ValueError, KeyError) as exc:
            raise SlotCannotStart(str(exc)) from exc
        _warm_up(model, ctx, slots)
        if cancelled.is_set():
            ctx.free()
            if projector is not None:
                projector.free()
            model.free()
            return None
    except BaseException:
        if projector is not None:
            projector.free()
        model.free()
        raise
    return LoadedModel(
        model=model, ctx=ctx, template=template, metadata=metadata, projector=projector
    )


def _load_projector(path: Path | None, model: LlamaModel, n_threads: int) -> Projector | None:
    if path is None:
        return None
    if not path.is_file():
        raise MultimodalProjectionCannotBeLoaded(
            f"multimodal projection file does not exist: {path}", str(path)
        )
    try:
        return Projector.load(path, model, n_threads=n_threads)
    except LlamaError as exc:
        raise MultimodalProjectionCannotBeLoaded(str(exc), str(path)) from exc


def _warm_up(model: LlamaModel, ctx: LlamaContext, slots: int) -> None:
    """Decode a few BOS tokens per slot so the first request does not pay for graph setup."""
    batch = Batch(max(4 * slots, 4))
    try:
        bos = model.bos if model.bos >= 0 else 0
        for seq_id in range(slots):
            if batch.n_tokens + 4 > min(batch.capacity, ctx.n_batch):
                break
            batch.add([bos] * 4, 0, seq_id, output_last=True)
        rc = ctx.decode(batch)
        if rc != 0:
            raise SlotCannotStart(f"warm-up decode failed with status {rc}")
    finally:
        batch.free()
        ctx.clear()
