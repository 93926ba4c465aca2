"""A slot: one llama.cpp sequence, the tokens its KV cache holds, and the request it serves."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs
import numpy as np

if TYPE_CHECKING:
    from paddler.engine._request import ActiveRequest


class SlotState(enum.Enum):
    IDLE = "IDLE"
    INGESTING = "INGESTING"
    GENERATING = "GENERATING"


@attrs.define(eq=False, repr=False)
class Slot:
    """Owned by the scheduler thread. `cached` are the tokens at positions 0..n-1 of its KV."""

    seq_id: int
    cached: list[int] = attrs.Factory(list)
    request: ActiveRequest | None = None
    state: SlotState = SlotState.IDLE

    def __repr__(self) -> str:
        return f"<Slot [seq={self.seq_id}, {self.state.value}, cached={len(self.cached)}]>"

    @property
    def busy(self) -> bool:
        return self.state is not SlotState.IDLE

    def common_prefix(self, tokens: Sequence[int]) -> int:
        """How many leading tokens of `tokens` this slot's KV already holds."""
        n = min(len(self.cached), len(tokens))
        if n == 0:
            return 0
        a = np.asarray(self.cached[:n], dtype=np.int32)
        b = np.asarray(tokens[:n], dtype=np.int32)
        mismatch = np.flatnonzero(a != b)
        return int(mismatch[0]) if mismatch.size else n


def pick_slot(slots: Sequence[Slot], prompt: Sequence[int]) -> tuple[Slot, int] | None:
    """The free slot sharing the longest prefix with `prompt` (ties: the least cached one).

    A prefix counts only when it is at least half of what the slot holds: a new conversation
    that shares a few chat-template tokens with another one's slot takes an empty (or the
    least cached) slot instead of discarding that conversation's cache for them. The returned
    prefix is the real one, reused either way.
    """
    best: tuple[int, int, Slot, int] | None = None
    for slot in slots:
        if slot.busy:
            continue
        prefix = slot.common_prefix(prompt)
        counted = prefix if 2 * prefix >= len(slot.cached) else 0
        key = (counted, -len(slot.cached))
        if best is None or key > best[:2]:
            best = (key[0], key[1], slot, prefix)
    if best is None:
        return None
    return best[2], best[3]
