"""Plugin manager: defaults, trylast, allow-list, and a throw-away policy plugin."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from paddler import hookimpl
from paddler.plugins import DEFAULT_PLUGINS, get_plugin_manager
from paddler.policies import AgentCandidate, RequestInfo
from paddler.transports import InProcTransport, WebSocketTransport


class ByHeader:
    """Routes to the agent named by the ``x-agent`` header."""

    @hookimpl
    def paddler_select_agent(
        self, request: RequestInfo, candidates: Sequence[AgentCandidate]
    ) -> AgentCandidate | None:
        wanted = request.headers.get("x-agent")
        return next((c for c in candidates if c.id == wanted), None)


@pytest.fixture
def pm() -> Iterator[object]:
    manager = get_plugin_manager(entry_points=False)
    manager.register(ByHeader(), name="by-header")
    yield manager
    manager.unregister(name="by-header")


CANDIDATES = [
    AgentCandidate(id="a", name=None, slots_total=1, slots_busy=0),
    AgentCandidate(id="b", name=None, slots_total=1, slots_busy=0),
]


def test_a_plugin_policy_wins_over_the_default(pm: object) -> None:
    """A registered policy is asked first; the built-in least-busy runs last."""
    request = RequestInfo(request_id="r", kind="generate", headers={"x-agent": "b"})
    chosen = pm.hook.paddler_select_agent(request=request, candidates=CANDIDATES)  # type: ignore[attr-defined]
    assert chosen.id == "b"


def test_default_policy_answers_when_plugins_decline(pm: object) -> None:
    """Returning None defers to the next implementation (least busy)."""
    request = RequestInfo(request_id="r", kind="generate")
    chosen = pm.hook.paddler_select_agent(request=request, candidates=CANDIDATES)  # type: ignore[attr-defined]
    assert chosen.id == "a"


def test_builtin_transports_by_scheme() -> None:
    """ws:// and inproc:// map to the built-in transports; unknown schemes to None."""
    hook = get_plugin_manager(entry_points=False).hook
    assert isinstance(hook.paddler_transport_for_url(url="ws://h:1"), WebSocketTransport)
    assert isinstance(hook.paddler_transport_for_url(url="inproc://x"), InProcTransport)
    assert hook.paddler_transport_for_url(url="carrier-pigeon://x") is None


def test_allow_list_loads_no_entry_points_when_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    """PADDLER_LOAD_PLUGINS='' loads none of the installed plugins, only the defaults."""
    monkeypatch.setenv("PADDLER_LOAD_PLUGINS", "")
    names = {name for name, _ in get_plugin_manager().list_name_plugin()}
    assert names == set(DEFAULT_PLUGINS)


def test_trace_plugins_logs_hook_calls(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """PADDLER_TRACE_PLUGINS logs each hook call at DEBUG."""
    monkeypatch.setenv("PADDLER_TRACE_PLUGINS", "1")
    caplog.set_level("DEBUG", logger="paddler.plugins")
    get_plugin_manager(entry_points=False).hook.paddler_transport_for_url(url="inproc://x")
    assert "paddler_transport_for_url" in caplog.text
