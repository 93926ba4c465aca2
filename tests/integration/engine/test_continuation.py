"""``generate(..., continuation=...)`` on the real model: what a resumed stream relies on.

The balancer hands a new agent the text a lost agent already streamed; greedy output must go
on exactly where it stopped, and usage must count the whole answer (``docs/failover.md``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest
from engine_test_helpers import chat, collect, content, done

from paddler.engine import LlamaEngine
from paddler.wire import (
    ContentToken,
    ContinueFromRawPromptParams,
    GbnfGrammar,
    InferenceParameters,
    SamplerError,
)

pytestmark = [pytest.mark.model, pytest.mark.anyio]

COUNTING = chat(("user", "Count from 1 to 30, separated by commas."), max_tokens=48)


@pytest.fixture(scope="module")
async def engine(model_path: Path) -> AsyncIterator[LlamaEngine]:
    async with await LlamaEngine.load(
        model_path, attrs.evolve(InferenceParameters.deterministic(), context_size=2048), slots=1
    ) as engine:
        yield engine


@pytest.mark.parametrize("streamed", [1, 7, 30])
async def test_greedy_continuation_ends_like_the_uninterrupted_answer(
    engine: LlamaEngine, streamed: int
) -> None:
    whole = await collect(engine.generate(COUNTING))
    pieces = [r.text for r in whole if isinstance(r, ContentToken)]
    start = "".join(pieces[:streamed])
    rest = await collect(engine.generate(COUNTING, continuation=start))
    assert start + content(rest) == content(whole)
    usage, resumed = done(whole).usage, done(rest).usage
    assert resumed.prompt_tokens == usage.prompt_tokens  # the continuation is not prompt
    assert resumed.completion_tokens == usage.completion_tokens == COUNTING.max_tokens


async def test_a_continuation_counts_against_max_tokens(engine: LlamaEngine) -> None:
    params = attrs.evolve(COUNTING, max_tokens=3)
    whole = await collect(engine.generate(params))
    start = content(whole)
    rest = await collect(engine.generate(params, continuation=start))
    assert content(rest) == ""  # the budget was used up before the agent was lost
    assert done(rest).usage.completion_tokens == 3


async def test_a_grammar_request_refuses_a_continuation(engine: LlamaEngine) -> None:
    params = ContinueFromRawPromptParams(
        raw_prompt="Go:", max_tokens=4, grammar=GbnfGrammar(grammar='root ::= "ab"+', root="root")
    )
    results = await collect(engine.generate(params, continuation="ab"))
    assert isinstance(results[-1], SamplerError)
    assert "cannot be continued" in results[-1].message
