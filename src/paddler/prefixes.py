"""Prefix fingerprints: short hashes of how a prompt begins, computed without a tokenizer.

The balancer never tokenizes (it does not load llama.cpp), so agents describe what their
slots' KV caches hold in terms the balancer can compute from a request too:

* a conversation's *chain* has one hash per message: hash ``i`` covers the tools and messages
  ``0..i`` (role and content as canonical JSON);
* a raw prompt's chain has one hash per full block of ``BLOCK_CHARS`` characters: hash ``i``
  covers characters ``0 .. (i+1)*BLOCK_CHARS - 1``.

Each hash commits to its whole prefix, so two chains share a prefix of depth ``d`` exactly
when they share hash ``d - 1``: the deepest hash of a request's chain that an agent reports is
how much of the request that agent holds. After a request completes, its slot holds the
prompt plus the generated reply, which ``held_after`` chains; the next turn of the
conversation begins with those messages, so its chain shares that prefix. Agents report a
bounded selection of each slot's chain (``compact``): its deepest hashes, from half its depth.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Sequence

from paddler.wire import (
    ContinueFromConversationHistoryParams,
    ContinueFromRawPromptParams,
    ConversationMessage,
    Tool,
    converter,
)

__all__ = [
    "BLOCK_CHARS",
    "HASH_HEX_DIGITS",
    "KEEP_DEEPEST",
    "compact",
    "conversation_chain",
    "held_after",
    "raw_prompt_chain",
    "request_chain",
    "shared_depth",
]

#: Characters per raw-prompt block (about 60 tokens of English text).
BLOCK_CHARS = 256
#: A hash is this many hex digits (48 bits: collisions are negligible among a few thousand).
HASH_HEX_DIGITS = 12
#: ``compact`` keeps at most the deepest this many hashes of a slot's chain.
KEEP_DEEPEST = 24

_DIGEST_BYTES = HASH_HEX_DIGITS // 2


def _step(previous: bytes, item: bytes) -> bytes:
    return hashlib.blake2b(previous + b"\x00" + item, digest_size=_DIGEST_BYTES).digest()


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def conversation_chain(
    messages: Sequence[ConversationMessage], tools: Sequence[Tool] = ()
) -> tuple[str, ...]:
    """One hash per message, each covering the tools and every message up to it."""
    state = _step(b"conversation", _canonical([converter.unstructure(t, Tool) for t in tools]))
    chain: list[str] = []
    for message in messages:
        state = _step(state, _canonical(converter.unstructure(message, ConversationMessage)))
        chain.append(state.hex())
    return tuple(chain)


def raw_prompt_chain(text: str) -> tuple[str, ...]:
    """One hash per full ``BLOCK_CHARS`` block of ``text`` (a shorter tail is not hashed)."""
    state = b"raw"
    chain: list[str] = []
    for start in range(0, len(text) - BLOCK_CHARS + 1, BLOCK_CHARS):
        state = _step(state, text[start : start + BLOCK_CHARS].encode())
        chain.append(state.hex())
    return tuple(chain)


def request_chain(params: object) -> tuple[str, ...]:
    """The chain of what a generation request's prompt begins with (empty for anything else)."""
    if isinstance(params, ContinueFromConversationHistoryParams):
        return conversation_chain(params.conversation_history, params.tools)
    if isinstance(params, ContinueFromRawPromptParams):
        return raw_prompt_chain(params.raw_prompt)
    return ()


def held_after(params: object, generated: str) -> tuple[str, ...]:
    """The chain a slot holds once ``params`` completed with ``generated`` text.

    A conversation gains the assistant message (when the prompt asked for one): the next turn
    sends it back as it was generated. A raw prompt is simply continued by the text.
    """
    if isinstance(params, ContinueFromConversationHistoryParams):
        messages = params.conversation_history
        if params.add_generation_prompt:
            messages = (*messages, ConversationMessage(role="assistant", content=generated))
        return conversation_chain(messages, params.tools)
    if isinstance(params, ContinueFromRawPromptParams):
        return raw_prompt_chain(params.raw_prompt + generated)
    return ()


def compact(chain: Sequence[str]) -> tuple[str, ...]:
    """What an agent reports of a slot's ``chain``: the hashes of its second half, at most
    the ``KEEP_DEEPEST`` deepest.

    The engine gives a prompt a slot for its cache only when they share at least half of
    what the slot holds (it would rather not discard most of one conversation's cache for a
    few shared tokens), so a shallower hash would promise a reuse that does not happen.
    """
    return tuple(chain[max(0, (len(chain) - 1) // 2, len(chain) - KEEP_DEEPEST) :])


def shared_depth(chain: Sequence[str], held: Collection[str]) -> int:
    """How deep a prefix of ``chain`` the hashes ``held`` cover (0: none)."""
    for index in range(len(chain) - 1, -1, -1):
        if chain[index] in held:
            return index + 1
    return 0
