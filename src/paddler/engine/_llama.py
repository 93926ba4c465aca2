"""The one adapter over llama-cpp-python's ctypes API.

Everything that touches `llama_cpp` internals lives here, so a library upgrade touches one file.
Objects here are not thread-safe: only the engine worker's main thread uses them.
"""

from __future__ import annotations

import ctypes
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np
import numpy.typing as npt

logger = logging.getLogger("paddler.engine.llama")

FloatRows = npt.NDArray[np.float32]

GGML_TYPES = {
    "F32": 0,
    "F16": 1,
    "Q4_0": 2,
    "Q4_1": 3,
    "Q5_0": 6,
    "Q5_1": 7,
    "Q8_0": 8,
    "IQ4_NL": 20,
    "BF16": 30,
}
POOLING_TYPES = {"Unspecified": -1, "None": 0, "Mean": 1, "Cls": 2, "Last": 3, "Rank": 4}

_backend_lock = threading.Lock()
_backend_ready = False
_log_callback: Any = None  # kept alive for the whole process: llama.cpp holds the pointer


class LlamaError(Exception):
    """llama.cpp refused something (load, context creation, decode)."""


def _route_log(level: int, text: bytes | None, _user_data: Any) -> None:
    if text and logger.isEnabledFor(logging.DEBUG):
        logger.debug("%s", text.decode("utf-8", "replace").rstrip())


def ensure_backend() -> None:
    """Initialise the llama backend once and route its logging to `logging` at DEBUG."""
    global _backend_ready, _log_callback
    with _backend_lock:
        if _backend_ready:
            return
        _log_callback = llama_cpp.llama_log_callback(_route_log)
        llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))
        llama_cpp.llama_backend_init()
        _backend_ready = True


class LlamaModel:
    """A loaded GGUF model and its vocabulary, with per-token caches."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle
        self.vocab = llama_cpp.llama_model_get_vocab(handle)
        self.n_vocab: int = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.n_embd: int = llama_cpp.llama_model_n_embd(handle)
        self.bos: int = llama_cpp.llama_vocab_bos(self.vocab)
        self.eos: int = llama_cpp.llama_vocab_eos(self.vocab)
        self.adds_bos = bool(llama_cpp.llama_vocab_get_add_bos(self.vocab))
        self._pieces: dict[int, bytes] = {}
        self._eog: dict[int, bool] = {}
        self._longest_piece: int | None = None

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        n_gpu_layers: int,
        on_progress: Callable[[float], bool],
        extra_buffer_types: bool = True,
    ) -> LlamaModel:
        ensure_backend()
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = n_gpu_layers
        params.use_extra_bufts = extra_buffer_types

        def progress(value: float, _user_data: Any) -> bool:
            try:
                return bool(on_progress(float(value)))
            except Exception:  # never let an exception cross into C
                logger.exception("progress callback failed")
                return False

        callback = llama_cpp.llama_progress_callback(progress)
        params.progress_callback = callback
        handle = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        del callback  # only used during the call above
        if not handle:
            raise LlamaError(f"llama.cpp could not load the model file {path}")
        return cls(handle)

    @property
    def handle(self) -> Any:
        return self._handle

    def metadata(self) -> dict[str, str]:
        out: dict[str, str] = {}
        buf = ctypes.create_string_buffer(1 << 20)
        for i in range(llama_cpp.llama_model_meta_count(self._handle)):
            n = llama_cpp.llama_model_meta_key_by_index(self._handle, i, buf, len(buf))
            if n < 0:
                continue
            key = buf.value.decode("utf-8", "replace")
            n = llama_cpp.llama_model_meta_val_str_by_index(self._handle, i, buf, len(buf))
            if n < 0:
                continue
            out[key] = buf.value.decode("utf-8", "replace")
        return out

    def tokenize(self, text: str, *, add_special: bool, parse_special: bool = True) -> list[int]:
        data = text.encode("utf-8")
        capacity = len(data) + 8
        buf = (llama_cpp.llama_token * capacity)()
        n = llama_cpp.llama_tokenize(
            self.vocab, data, len(data), buf, capacity, add_special, parse_special
        )
        if n < 0:
            capacity = -n
            buf = (llama_cpp.llama_token * capacity)()
            n = llama_cpp.llama_tokenize(
                self.vocab, data, len(data), buf, capacity, add_special, parse_special
            )
        return list(buf[:n])

    def piece(self, token: int) -> bytes:
        """The bytes a token stands for (special tokens rendered), cached."""
        cached = self._pieces.get(token)
        if cached is None:
            buf = ctypes.create_string_buffer(64)
            n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, True)
            if n < 0:
                buf = ctypes.create_string_buffer(-n)
                n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, True)
            cached = buf.raw[: max(n, 0)]
            self._pieces[token] = cached
        return cached

    def longest_piece(self) -> int:
        """Bytes of the vocabulary's longest token (special tokens rendered), computed once.

        No token covers more text than this, so a text of B bytes has at least
        B / longest_piece() tokens: a bound on prompt length that needs no tokenizing.
        """
        if self._longest_piece is None:
            self._longest_piece = max((len(self.piece(t)) for t in range(self.n_vocab)), default=1)
        return max(self._longest_piece, 1)

    def token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self.piece(token).decode("utf-8", "replace")

    def is_eog(self, token: int) -> bool:
        cached = self._eog.get(token)
        if cached is None:
            cached = bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))
            self._eog[token] = cached
        return cached

    def free(self) -> None:
        if self._handle:
            llama_cpp.llama_model_free(self._handle)
            self._handle = None


class Batch:
    """A reusable `llama_batch` with numpy views over its arrays (fetched once)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._batch = llama_cpp.llama_batch_init(capacity, 0, 1)
        b = self._batch
        self._token = np.ctypeslib.as_array(b.token, shape=(capacity,))
        self._pos = np.ctypeslib.as_array(b.pos, shape=(capacity,))
        self._n_seq = np.ctypeslib.as_array(b.n_seq_id, shape=(capacity,))
        self._logits = np.ctypeslib.as_array(b.logits, shape=(capacity,))
        seq_ptrs = b.seq_id
        self._seq = [seq_ptrs[i] for i in range(capacity)]
        self._n_seq[:] = 1
        self.n_tokens = 0
        self.n_outputs = 0

    def clear(self) -> None:
        self.n_tokens = 0
        self.n_outputs = 0

    def add(self, tokens: Sequence[int], start_pos: int, seq_id: int, *, output_last: bool) -> int:
        """Append tokens of one sequence; return the batch index of the last one."""
        n = len(tokens)
        i = self.n_tokens
        self._token[i : i + n] = tokens
        self._pos[i : i + n] = np.arange(start_pos, start_pos + n, dtype=np.int32)
        self._logits[i : i + n] = 0
        seq = self._seq
        for j in range(i, i + n):
            seq[j][0] = seq_id
        if output_last:
            self._logits[i + n - 1] = 1
            self.n_outputs += 1
        self.n_tokens = i + n
        return i + n - 1

    def add_all_outputs(self, tokens: Sequence[int], seq_id: int) -> None:
        """Append a whole sequence from position 0 with every output on (embeddings)."""
        i = self.n_tokens
        self.add(tokens, 0, seq_id, output_last=False)
        self._logits[i : self.n_tokens] = 1
        self.n_outputs += len(tokens)

    def entries(self) -> list[tuple[int, int, int, bool]]:
        """``(seq_id, position, token, wants_logits)`` of each token added since `clear()`
        (for logs, and for a fake context in tests)."""
        return [
            (
                int(self._seq[i][0]),
                int(self._pos[i]),
                int(self._token[i]),
                bool(self._logits[i]),
            )
            for i in range(self.n_tokens)
        ]

    @property
    def raw(self) -> Any:
        self._batch.n_tokens = self.n_tokens
        return self._batch

    def free(self) -> None:
        llama_cpp.llama_batch_free(self._batch)


class LlamaContext:
    """One llama context shared by every slot; each slot is a sequence id."""

    def __init__(
        self,
        model: LlamaModel,
        *,
        n_ctx: int,
        n_batch: int,
        n_seq_max: int,
        n_threads: int,
        type_k: str,
        type_v: str,
        embeddings: bool,
        pooling: str,
    ) -> None:
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = n_batch
        params.n_ubatch = n_batch if embeddings else min(n_batch, 512)
        params.n_seq_max = n_seq_max
        params.n_threads = n_threads
        params.n_threads_batch = n_threads
        params.type_k = GGML_TYPES[type_k]
        params.type_v = GGML_TYPES[type_v]
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_AUTO
        params.embeddings = embeddings
        params.no_perf = True
        if embeddings:
            params.pooling_type = POOLING_TYPES[pooling]
            # Separate KV streams split a multi-sequence batch into equal-length ubatches and
            # pooling then sees only part of a document; one unified stream keeps it whole.
            params.kv_unified = True
        handle = llama_cpp.llama_init_from_model(model.handle, params)
        if not handle:
            raise LlamaError(
                f"llama.cpp could not create a context (n_ctx={n_ctx}, n_batch={n_batch}, "
                f"n_seq_max={n_seq_max})"
            )
        self._handle = handle
        self._model = model
        self._memory = llama_cpp.llama_get_memory(handle)
        self.n_ctx: int = llama_cpp.llama_n_ctx(handle)
        #: KV cells one sequence may use (n_ctx / n_seq_max without a unified KV stream).
        self.n_ctx_seq: int = llama_cpp.llama_n_ctx_seq(handle)
        # llama.cpp clamps n_batch to n_ctx for causal models; a bigger batch aborts the process.
        self.n_batch: int = llama_cpp.llama_n_batch(handle)
        self.n_threads: int = llama_cpp.llama_n_threads(handle)
        self.kv_unified = bool(params.kv_unified)
        self.n_vocab = model.n_vocab
        self.n_embd = model.n_embd

    def decode(self, batch: Batch) -> int:
        """0 on success, 1 when no KV slot was found, other values on errors."""
        return int(llama_cpp.llama_decode(self._handle, batch.raw))

    def logits(self, n_outputs: int) -> FloatRows:
        """All output rows of the last decode, in batch order (a view, valid until next decode)."""
        ptr = llama_cpp.llama_get_logits(self._handle)
        return np.ctypeslib.as_array(ptr, shape=(n_outputs, self.n_vocab))

    def seq_remove(self, seq_id: int, start: int = 0) -> None:
        """Drop a sequence's KV cells from position `start` to its end."""
        llama_cpp.llama_memory_seq_rm(self._memory, seq_id, start, -1)

    def clear(self) -> None:
        llama_cpp.llama_memory_clear(self._memory, True)

    def sequence_embedding(self, seq_id: int) -> FloatRows | None:
        ptr = llama_cpp.llama_get_embeddings_seq(self._handle, seq_id)
        if not ptr:
            return None
        return np.ctypeslib.as_array(ptr, shape=(self.n_embd,)).copy()

    @property
    def handle(self) -> Any:
        return self._handle

    def free(self) -> None:
        if self._handle:
            llama_cpp.llama_free(self._handle)
            self._handle = None


class ChainSampler:
    """One request's llama.cpp chain: penalties → top_k → top_p → min_p → temp → dist."""

    def __init__(
        self,
        *,
        penalty_last_n: int,
        penalty_repeat: float,
        penalty_frequency: float,
        penalty_presence: float,
        top_k: int,
        top_p: float,
        min_p: float,
        temperature: float,
        seed: int,
        n_ctx: int,
        n_vocab: int,
    ) -> None:
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        add = llama_cpp.llama_sampler_chain_add
        last_n = n_ctx if penalty_last_n < 0 else penalty_last_n
        if last_n != 0 and (
            penalty_repeat != 1.0 or penalty_frequency != 0.0 or penalty_presence != 0.0
        ):
            add(
                chain,
                llama_cpp.llama_sampler_init_penalties(
                    n_vocab, last_n, penalty_repeat, penalty_frequency, penalty_presence
                ),
            )
        if temperature <= 0.0:
            add(chain, llama_cpp.llama_sampler_init_greedy())
        else:
            if top_k > 0:
                add(chain, llama_cpp.llama_sampler_init_top_k(top_k))
            add(chain, llama_cpp.llama_sampler_init_top_p(top_p, 1))
            add(chain, llama_cpp.llama_sampler_init_min_p(min_p, 1))
            add(chain, llama_cpp.llama_sampler_init_temp(temperature))
            add(chain, llama_cpp.llama_sampler_init_dist(seed & 0xFFFFFFFF))
        self._chain = chain
        self._candidates: _Candidates | None = None

    def sample(self, ctx: LlamaContext, batch_index: int) -> int:
        return int(llama_cpp.llama_sampler_sample(self._chain, ctx.handle, batch_index))

    def select(self, candidates: _Candidates) -> int:
        """Apply the chain to a prepared candidate array and return the selected token."""
        llama_cpp.llama_sampler_apply(self._chain, candidates.pointer)
        return candidates.selected_token()

    def accept(self, token: int) -> None:
        llama_cpp.llama_sampler_accept(self._chain, token)

    def free(self) -> None:
        if self._chain:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None


_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])


class _Candidates:
    """A `llama_token_data_array` over a numpy buffer, refilled from one logits row."""

    def __init__(self, n_vocab: int) -> None:
        self.data = np.zeros(n_vocab, dtype=_TOKEN_DATA)
        self._ids = np.arange(n_vocab, dtype=np.int32)
        self._array = llama_cpp.llama_token_data_array(
            data=self.data.ctypes.data_as(llama_cpp.llama_token_data_p),
            size=n_vocab,
            selected=-1,
            sorted=False,
        )
        self.pointer = ctypes.pointer(self._array)
        self._n_vocab = n_vocab

    def fill(self, logits: FloatRows) -> None:
        self.data["id"] = self._ids
        self.data["logit"] = logits
        self.data["p"] = 0.0
        self._array.data = self.data.ctypes.data_as(llama_cpp.llama_token_data_p)  # type: ignore[assignment]
        self._array.size = self._n_vocab
        self._array.selected = -1
        self._array.sorted = False

    def any_allowed(self) -> bool:
        size = self._array.size
        return bool(np.isfinite(self.data["logit"][:size]).any())

    def argmax(self) -> int:
        size = self._array.size
        return int(self.data["id"][int(np.argmax(self.data["logit"][:size]))])

    def selected_token(self) -> int:
        selected = self._array.selected
        if selected < 0 or selected >= self._array.size:
            return self.argmax()
        return int(self.data["id"][selected])


class GrammarSampler:
    """A grammar sampler applied to the candidates before the chain, so rejection is visible."""

    def __init__(self, model: LlamaModel, gbnf: str, root: str) -> None:
        handle = llama_cpp.llama_sampler_init_grammar(
            model.vocab, gbnf.encode("utf-8"), root.encode("utf-8")
        )
        if not handle:
            raise LlamaError("llama.cpp could not parse the grammar")
        self._handle = handle
        self._candidates = _Candidates(model.n_vocab)

    def constrain(self, logits: FloatRows) -> _Candidates | None:
        """Candidates with disallowed tokens masked out, or None when nothing is allowed."""
        self._candidates.fill(logits)
        llama_cpp.llama_sampler_apply(self._handle, self._candidates.pointer)
        if not self._candidates.any_allowed():
            return None
        return self._candidates

    def accept(self, token: int) -> None:
        llama_cpp.llama_sampler_accept(self._handle, token)

    def free(self) -> None:
        if self._handle:
            llama_cpp.llama_sampler_free(self._handle)
            self._handle = None


def grammar_is_valid(model: LlamaModel, gbnf: str, root: str) -> bool:
    """Ask llama.cpp to parse a grammar without keeping it (it returns NULL on errors)."""
    try:
        sampler = GrammarSampler(model, gbnf, root)
    except LlamaError:
        return False
    sampler.free()
    return True
