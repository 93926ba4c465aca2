"""The session-affinity policy: sticky while the agent has room, then least busy."""

from __future__ import annotations

import pytest
from paddler_session_affinity import SessionAffinity

from paddler.plugins import get_plugin_manager
from paddler.policies import AgentCandidate, RequestInfo


def candidate(agent_id: str, *, total: int = 1, busy: int = 0) -> AgentCandidate:
    return AgentCandidate(id=agent_id, name=agent_id, slots_total=total, slots_busy=busy)


def request(session: str | None) -> RequestInfo:
    headers = {} if session is None else {"x-paddler-session": session}
    return RequestInfo(request_id="r", kind="generate", headers=headers)


@pytest.fixture
def policy() -> SessionAffinity:
    return SessionAffinity()


def test_without_header_defers_to_other_policies(policy: SessionAffinity) -> None:
    """A request with no session header gets None, so least-busy decides."""
    assert policy.paddler_select_agent(request(None), [candidate("a")]) is None


def test_first_request_takes_least_busy_and_is_remembered(policy: SessionAffinity) -> None:
    """The first request of a session goes to the least busy agent, which becomes its agent."""
    chosen = policy.paddler_select_agent(
        request("s1"), [candidate("a", total=4, busy=2), candidate("b", total=4, busy=1)]
    )
    assert chosen is not None and chosen.id == "b"
    assert policy.agent_for("s1") == "b"


def test_session_sticks_even_when_another_agent_is_less_busy(policy: SessionAffinity) -> None:
    """Once bound, the session stays on its agent while that agent has a free slot."""
    policy.paddler_select_agent(request("s1"), [candidate("a", total=4)])
    chosen = policy.paddler_select_agent(
        request("s1"), [candidate("b", total=4), candidate("a", total=4, busy=3)]
    )
    assert chosen is not None and chosen.id == "a"


def test_full_agent_falls_back_and_rebinds(policy: SessionAffinity) -> None:
    """When the session's agent is not a candidate (full or gone), another one takes over."""
    policy.paddler_select_agent(request("s1"), [candidate("a")])
    chosen = policy.paddler_select_agent(request("s1"), [candidate("b", total=2, busy=1)])
    assert chosen is not None and chosen.id == "b"
    assert policy.agent_for("s1") == "b"


def test_header_name_is_case_insensitive(policy: SessionAffinity) -> None:
    """Clients may send X-Paddler-Session in any case."""
    info = RequestInfo(request_id="r", kind="generate", headers={"X-Paddler-Session": "s"})
    assert policy.session_of(info) == "s"


def test_least_recently_used_sessions_are_forgotten() -> None:
    """The session table is bounded; the oldest session is dropped first."""
    policy = SessionAffinity(max_sessions=2)
    for session in ("s1", "s2", "s3"):
        policy.paddler_select_agent(request(session), [candidate("a")])
    assert policy.agent_for("s1") is None
    assert len(policy) == 2


def test_registered_plugin_wins_over_least_busy() -> None:
    """Through the plugin manager, the policy runs before the built-in least-busy default."""
    pm = get_plugin_manager(entry_points=False)
    pm.register(SessionAffinity(), name="session-affinity-test")
    candidates = [candidate("a", total=4), candidate("b", total=4)]
    chosen = pm.hook.paddler_select_agent(request=request("s1"), candidates=candidates)
    assert chosen.id == "a"
    busy_a = [candidate("a", total=4, busy=3), candidate("b", total=4)]
    again = pm.hook.paddler_select_agent(request=request("s1"), candidates=busy_a)
    assert again.id == "a"
    plain = pm.hook.paddler_select_agent(request=request(None), candidates=busy_a)
    assert plain.id == "b"


def test_entry_point_is_installed() -> None:
    """The distribution declares itself in the ``paddler`` entry-point group."""
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group="paddler")}
    assert "session_affinity" in names, "pip install -e plugins/paddler-session-affinity"
    assert entry_points(group="paddler")["session_affinity"].load() is not None


def test_works_on_the_balancers_candidates_view(policy: SessionAffinity) -> None:
    """With the pool's live view (what the balancer passes), the bound agent is found by id."""
    from paddler.balancer._pool import AgentEntry, AgentPool
    from paddler.wire import AgentStateApplicationStatus, SlotAggregatedStatusSnapshot

    def status(slots: int) -> SlotAggregatedStatusSnapshot:
        return SlotAggregatedStatusSnapshot(
            desired_slots_total=slots,
            slots_total=slots,
            slots_processing=0,
            download_current=0,
            download_total=0,
            download_indeterminate=False,
            issues=(),
            state_application_status=AgentStateApplicationStatus.APPLIED,
            uses_chat_template_override=False,
            version=1,
        )

    pool = AgentPool()
    for agent_id in ("a", "b"):
        pool.add(AgentEntry(id=agent_id, name=agent_id, status=status(4)))
    first = policy.paddler_select_agent(request("s1"), pool.candidates())
    assert first is not None and first.id == "a" and pool.claim("a")
    again = policy.paddler_select_agent(request("s1"), pool.candidates())
    assert again is not None and again.id == "a", "sticky although b is less busy"
