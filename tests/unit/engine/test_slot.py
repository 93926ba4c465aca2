"""Slot choice for the prompt cache, and the slot's repr."""

from __future__ import annotations

from paddler.engine import Slot, SlotState
from paddler.engine._slot import pick_slot


def test_repr_shows_sequence_state_and_cache() -> None:
    slot = Slot(seq_id=2, cached=list(range(143)), state=SlotState.GENERATING)
    assert repr(slot) == "<Slot [seq=2, GENERATING, cached=143]>"


def test_picks_the_free_slot_with_the_longest_common_prefix() -> None:
    slots = [
        Slot(seq_id=0, cached=[1, 2, 3]),
        Slot(seq_id=1, cached=[1, 2, 3, 4, 5, 9]),
        Slot(seq_id=2, cached=[1, 2, 3, 4, 5, 6, 7], state=SlotState.GENERATING),
    ]
    picked = pick_slot(slots, [1, 2, 3, 4, 5, 6, 7, 8])
    assert picked == (slots[1], 5)


def test_without_a_shared_prefix_the_least_cached_slot_is_taken() -> None:
    slots = [
        Slot(seq_id=0, cached=[5, 6, 7]),
        Slot(seq_id=1, cached=[8]),
        Slot(seq_id=2, cached=[9, 9]),
    ]
    assert pick_slot(slots, [1, 2]) == (slots[1], 0)


def test_a_few_shared_tokens_do_not_evict_another_conversation() -> None:
    """Sharing less than half of a slot's cache (say, the chat template's opening tokens),
    a prompt takes the empty slot and the other conversation keeps its cache."""
    other = Slot(seq_id=0, cached=[1, 2, 3, 40, 41, 42, 43, 44])
    empty = Slot(seq_id=1)
    assert pick_slot([other, empty], [1, 2, 3, 7, 8]) == (empty, 0)
    # with no empty slot, the least cached one; the shared tokens are still reused
    shorter = Slot(seq_id=2, cached=[1, 2, 50, 51, 52])
    assert pick_slot([other, shorter], [1, 2, 3, 7, 8]) == (shorter, 2)


def test_no_free_slot() -> None:
    assert pick_slot([Slot(seq_id=0, state=SlotState.INGESTING)], [1]) is None
