"""Agent join tokens: who may register, and which token owns an agent id."""

from __future__ import annotations

from typing import Any

from paddler_server._agent_tokens import AgentTokenGate
from paddler_server._bearer import SecretSet


async def _app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - never run
    raise AssertionError("the gate only decides here")


def test_no_token_is_401_and_a_wrong_one_403() -> None:
    """A missing token asks for one; a wrong token is refused."""
    gate = AgentTokenGate(_app, SecretSet(["t1"]))
    assert gate.check("a1", None) == (
        401,
        "this balancer needs an agent token (paddler agent --token)",
    )
    refusal = gate.check("a1", "Bearer nope")
    assert refusal is not None and refusal[0] == 403


def test_an_id_stays_with_the_token_that_first_used_it() -> None:
    """Another accepted token cannot take over a bound agent id; the first one can reclaim it."""
    gate = AgentTokenGate(_app, SecretSet(["machine-a", "machine-b"]))
    assert gate.check("a1", "Bearer machine-a") is None
    refusal = gate.check("a1", "Bearer machine-b")
    assert refusal is not None and refusal[0] == 403 and "a1" in refusal[1]
    assert gate.check("a1", "Bearer machine-a") is None
    assert gate.check("b1", "Bearer machine-b") is None
