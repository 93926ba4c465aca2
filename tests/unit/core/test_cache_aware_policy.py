"""The cache_aware policy's choices, and how named policies are chosen and composed."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from paddler.cache_aware import CacheAware
from paddler.hookspecs import hookimpl
from paddler.plugins import get_plugin_manager
from paddler.policies import (
    AgentCandidate,
    BalancingPolicy,
    RequestInfo,
    UnknownPolicy,
    known_policies,
    use_policy,
)
from paddler.prefixes import compact, conversation_chain, request_chain
from paddler.wire import (
    AgentStateApplicationStatus,
    ContinueFromConversationHistoryParams,
    ConversationMessage,
    SlotAggregatedStatusSnapshot,
)

HISTORY = tuple(
    ConversationMessage(role=role, content=text)
    for role, text in [
        ("system", "Be brief."),
        ("user", "Hi"),
        ("assistant", "Hello"),
        ("user", "Joke?"),
    ]
)


def generate(history: tuple[ConversationMessage, ...] = HISTORY) -> RequestInfo:
    params = ContinueFromConversationHistoryParams(
        add_generation_prompt=True,
        conversation_history=history,
        enable_thinking=False,
        max_tokens=8,
    )
    return RequestInfo(request_id="r", kind="generate", params=params)


def agent(agent_id: str, *, busy: int = 0, total: int = 4, holds: int = 0) -> AgentCandidate:
    """An agent whose idle slot holds the first ``holds`` messages of ``HISTORY``."""
    held = compact(conversation_chain(HISTORY[:holds])) if holds else None
    snapshot = SlotAggregatedStatusSnapshot(
        desired_slots_total=total,
        slots_total=total,
        slots_processing=busy,
        download_current=0,
        download_total=0,
        download_indeterminate=False,
        issues=(),
        state_application_status=AgentStateApplicationStatus.APPLIED,
        uses_chat_template_override=False,
        version=1,
        cached_prefixes=held,
    )
    return AgentCandidate(agent_id, agent_id, total, busy, snapshot)


def chosen(candidates: Sequence[AgentCandidate], request: RequestInfo | None = None) -> str:
    result = CacheAware().select(request or generate(), candidates)
    assert result is not None
    return result.id


def test_the_agent_holding_the_longest_prefix_gets_the_request() -> None:
    assert chosen([agent("a"), agent("b", holds=1), agent("c", holds=3)]) == "c"
    assert chosen([agent("a"), agent("b", holds=1, busy=1)]) == "b"  # any cached prefix counts


def test_equal_prefixes_go_to_the_less_busy_holder() -> None:
    assert chosen([agent("a", holds=3, busy=2), agent("b", holds=3, busy=1), agent("c")]) == "b"


def test_nothing_cached_anywhere_is_least_busy() -> None:
    assert chosen([agent("a", busy=1), agent("b"), agent("c", busy=2)]) == "b"
    other = generate((ConversationMessage(role="user", content="Something else"),))
    assert chosen([agent("a", busy=1, holds=4), agent("b")], other) == "b"


def test_without_a_cached_prefix_equally_idle_agents_take_turns() -> None:
    """A quiet cluster: least busy would pick the same first idle agent every time and
    overwrite its slots; this policy rotates among the idle agents instead."""
    policy = CacheAware()
    idle = [agent("a"), agent("b"), agent("c", busy=1)]
    picks = []
    for _ in range(4):
        result = policy.select(generate(), idle)
        assert result is not None
        picks.append(result.id)
    assert picks == ["a", "b", "a", "b"]


def test_a_hot_prefix_does_not_pile_onto_its_holder() -> None:
    """The holder wins while at most 2 requests busier than the least busy candidate."""
    assert chosen([agent("a"), agent("hot", busy=2, holds=4)]) == "hot"
    assert chosen([agent("a"), agent("hot", busy=3, holds=4)]) == "a"
    assert chosen([agent("a", busy=1), agent("hot", busy=3, holds=4)]) == "hot"
    strict = CacheAware(max_extra_busy=0).select(
        generate(), [agent("a"), agent("hot", busy=1, holds=4)]
    )
    assert strict is not None and strict.id == "a"


def test_a_holder_without_a_free_slot_is_passed_over() -> None:
    assert chosen([agent("full", busy=4, holds=4), agent("b", busy=1)]) == "b"


def test_embeddings_and_agents_without_the_extension_fall_back_to_least_busy() -> None:
    embed = RequestInfo(request_id="e", kind="embed")
    assert chosen([agent("a", busy=1, holds=4), agent("b")], embed) == "b"
    plain = AgentCandidate("p", "p", 4, 0, None)
    assert chosen([agent("a", busy=1), plain]) == "p"
    assert request_chain(None) == ()


def test_an_unknown_policy_name_lists_the_known_ones() -> None:
    pm = get_plugin_manager(entry_points=False)
    assert {"least_busy", "cache_aware"} <= set(known_policies(pm))
    with pytest.raises(UnknownPolicy, match="known policies: cache_aware, least_busy"):
        use_policy(pm, "cache_awre")


class Offers:
    """A plugin offering one named policy, and one that routes a header (like session
    affinity) ahead of whatever policy was chosen."""

    @hookimpl
    def paddler_balancing_policies(self) -> Sequence[BalancingPolicy]:
        return (BalancingPolicy("last", lambda request, candidates: candidates[-1]),)

    @hookimpl
    def paddler_select_agent(
        self, request: RequestInfo, candidates: Sequence[AgentCandidate]
    ) -> AgentCandidate | None:
        if "x-pin" not in request.headers:
            return None
        return next(c for c in candidates if c.id == request.headers["x-pin"])


def test_a_chosen_policy_decides_after_the_plugins_and_before_least_busy() -> None:
    pm = get_plugin_manager(entry_points=False)
    pm.register(Offers(), name="offers-test")
    candidates = [agent("a"), agent("b", holds=4, busy=1), agent("c", busy=2)]
    select = pm.hook.paddler_select_agent

    assert select(request=generate(), candidates=candidates).id == "a"  # default: least busy
    assert use_policy(pm, "cache_aware").name == "cache_aware"
    assert select(request=generate(), candidates=candidates).id == "b"
    pinned = RequestInfo(
        request_id="r", kind="generate", params=generate().params, headers={"x-pin": "c"}
    )
    assert select(request=pinned, candidates=candidates).id == "c"  # a plugin's hook wins
    use_policy(pm, "last")  # choosing again replaces the choice
    assert select(request=generate(), candidates=candidates).id == "c"
    use_policy(pm, "least_busy")
    assert select(request=generate(), candidates=candidates).id == "a"
