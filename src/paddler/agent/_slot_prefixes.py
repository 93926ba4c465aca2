"""SlotPrefixes: the agent's picture of what its engine's slots hold, as prefix hashes.

The engine keeps each slot's tokens and gives a request the free slot sharing the longest
token prefix with its prompt, counting a prefix only when it is at least half of what the slot
holds (ties, and no such slot: the least cached). The agent cannot see those tokens (the
engine may run in another process), so it mirrors the same choice on ``paddler.prefixes``
chains: a request takes the free mirrored slot whose chain shares the most with its own, and
when it completes that slot holds the prompt plus the reply (``held_after``). The hashes of
the idle slots are what the agent reports in ``cached_prefixes``. It is a picture, not the
truth (a tie may go another way in the engine); a wrong picture costs a cache miss, never a
wrong answer.
"""

from __future__ import annotations

import attrs

from paddler.prefixes import compact, held_after, request_chain
from paddler.wire import (
    ContentToken,
    ContinueFromConversationHistoryParams,
    ContinueFromRawPromptParams,
    Done,
    ResponsePayload,
    is_terminal_payload,
)

__all__ = ["HeldSlot", "SlotPrefixes"]


@attrs.define(eq=False)
class HeldSlot:
    """One mirrored slot; while ``request`` is set it serves that request."""

    chain: tuple[str, ...] = ()
    request: object = None
    generated: list[str] = attrs.Factory(list)


class SlotPrefixes:
    """``slots`` mirrored slots: ``take`` one for a request, ``observe`` its results."""

    def __init__(self, slots: int) -> None:
        self.slots = [HeldSlot() for _ in range(max(0, slots))]
        self._owner: object = None

    def take(self, params: object, *, owner: object = None) -> HeldSlot | None:
        """The slot the engine would give ``params`` (None: not a generation, or all busy).

        ``owner`` is the engine serving it: a new engine starts with empty slots.
        """
        if owner is not self._owner:
            self._owner = owner
            self.slots = [HeldSlot() for _ in self.slots]
        if not isinstance(
            params, ContinueFromConversationHistoryParams | ContinueFromRawPromptParams
        ):
            return None
        chain = request_chain(params)
        best: HeldSlot | None = None
        best_key = (-1, 0)
        for slot in self.slots:
            if slot.request is not None:
                continue
            shared = _shared(chain, slot.chain)
            counted = shared if 2 * shared >= len(slot.chain) else 0  # as the engine counts
            key = (counted, -len(slot.chain))
            if key > best_key:
                best, best_key = slot, key
        if best is not None:
            best.chain, best.request, best.generated = chain, params, []
        return best

    def observe(self, slot: HeldSlot | None, result: ResponsePayload) -> bool:
        """Note one result; True when it ended the request (the slot's hashes changed)."""
        if slot is None or slot.request is None:
            return False
        if isinstance(result, ContentToken):
            slot.generated.append(result.text)
            return False
        if not is_terminal_payload(result):
            return False
        if isinstance(result, Done):  # else (an error) it holds the prompt at most
            slot.chain = held_after(slot.request, "".join(slot.generated))
        self.release(slot)
        return True

    def release(self, slot: HeldSlot | None) -> bool:
        """Free ``slot`` if it still serves a request (stopped or failed: it holds the prompt,
        as far as the engine got with it); True when that freed it."""
        if slot is None or slot.request is None:
            return False
        slot.request, slot.generated = None, []
        return True

    def hashes(self) -> tuple[str, ...]:
        """What the idle slots hold, each slot's chain ``compact``-ed, without repeats."""
        seen: dict[str, None] = {}
        for slot in self.slots:
            if slot.request is None:
                seen.update(dict.fromkeys(compact(slot.chain)))
        return tuple(seen)


def _shared(chain: tuple[str, ...], held: tuple[str, ...]) -> int:
    """Common prefix length of two chains (equal hashes at a depth mean equal prefixes)."""
    for depth in range(min(len(chain), len(held)), 0, -1):
        if chain[depth - 1] == held[depth - 1]:
            return depth
    return 0
