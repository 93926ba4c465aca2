"""The cluster-wide inference parameters (spec §5.1) and their enums."""

from __future__ import annotations

import enum
from typing import Self

from attrs import evolve, field, frozen

from ._markers import F32, WIRE_REQUIRED

__all__ = [
    "InferenceParameters",
    "KvCacheDtype",
    "PoolingType",
]


class KvCacheDtype(enum.StrEnum):
    """The llama.cpp type of the K or V cache."""

    F32 = "F32"
    F16 = "F16"
    BF16 = "BF16"
    Q8_0 = "Q8_0"
    Q4_0 = "Q4_0"
    Q4_1 = "Q4_1"
    IQ4_NL = "IQ4_NL"
    Q5_0 = "Q5_0"
    Q5_1 = "Q5_1"


class PoolingType(enum.StrEnum):
    """How token embeddings are pooled into one vector per document."""

    UNSPECIFIED = "Unspecified"
    NONE = "None"
    MEAN = "Mean"
    CLS = "Cls"
    LAST = "Last"
    RANK = "Rank"


@frozen(kw_only=True)
class InferenceParameters:
    """Every field is required on the wire; the Python defaults are Paddler's defaults."""

    n_batch: int = field(default=2048, metadata=WIRE_REQUIRED)
    context_size: int = field(default=8192, metadata=WIRE_REQUIRED)
    embedding_batch_size: int = field(default=256, metadata=WIRE_REQUIRED)
    enable_embeddings: bool = field(default=False, metadata=WIRE_REQUIRED)
    image_resize_to_fit: int = field(default=1024, metadata=WIRE_REQUIRED)
    k_cache_dtype: KvCacheDtype = field(default=KvCacheDtype.Q8_0, metadata=WIRE_REQUIRED)
    v_cache_dtype: KvCacheDtype = field(default=KvCacheDtype.Q8_0, metadata=WIRE_REQUIRED)
    min_p: F32 = field(default=0.05, metadata=WIRE_REQUIRED)
    n_gpu_layers: int = field(default=0, metadata=WIRE_REQUIRED)
    penalty_frequency: F32 = field(default=0.0, metadata=WIRE_REQUIRED)
    penalty_last_n: int = field(default=-1, metadata=WIRE_REQUIRED)
    penalty_presence: F32 = field(default=0.8, metadata=WIRE_REQUIRED)
    penalty_repeat: F32 = field(default=1.1, metadata=WIRE_REQUIRED)
    pooling_type: PoolingType = field(default=PoolingType.LAST, metadata=WIRE_REQUIRED)
    temperature: F32 = field(default=0.8, metadata=WIRE_REQUIRED)
    top_k: int = field(default=80, metadata=WIRE_REQUIRED)
    top_p: F32 = field(default=0.8, metadata=WIRE_REQUIRED)

    @classmethod
    def deterministic(cls) -> Self:
        """Greedy sampling with penalties off: the preset tests use to compare outputs."""
        return evolve(
            cls(),
            min_p=0.0,
            penalty_frequency=0.0,
            penalty_presence=0.0,
            penalty_repeat=1.0,
            temperature=0.0,
            top_k=1,
            top_p=1.0,
        )
