"""Helpers shared by the engine tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import anyio

from paddler.engine import GenerationStream
from paddler.wire import (
    ContentToken,
    ContinueFromConversationHistoryParams,
    ConversationMessage,
    Done,
    GeneratedTokenResult,
    UndeterminableToken,
    is_terminal,
)


async def collect(
    stream: GenerationStream | AsyncIterator[GeneratedTokenResult],
) -> list[GeneratedTokenResult]:
    """Every result of a stream, checking that exactly the last one is terminal."""
    results: list[GeneratedTokenResult] = []
    with anyio.fail_after(60):
        async for result in stream:
            results.append(result)
    assert results, "stream ended without any result"
    assert is_terminal(results[-1]), results[-1]
    assert not any(is_terminal(r) for r in results[:-1])
    return results


def content(results: Sequence[GeneratedTokenResult]) -> str:
    """The answer text: content, and undeterminable text (a known format before any marker)."""
    answer = (ContentToken, UndeterminableToken)
    return "".join(r.text for r in results if isinstance(r, answer))


def done(results: Sequence[GeneratedTokenResult]) -> Done:
    last = results[-1]
    assert isinstance(last, Done), last
    return last


def chat(
    *turns: tuple[str, str], max_tokens: int = 32, **kwargs: object
) -> ContinueFromConversationHistoryParams:
    return ContinueFromConversationHistoryParams(
        add_generation_prompt=True,
        conversation_history=tuple(ConversationMessage(role=r, content=c) for r, c in turns),
        enable_thinking=False,
        max_tokens=max_tokens,
        **kwargs,  # type: ignore[arg-type]
    )
