"""Schema and grammar bombs against a real CLI cluster: a clear error for that request only.

The agent must stay connected, its engine worker must not crash (30,000 nested GBNF groups
overflow llama.cpp's parser without the limit), and an ordinary request completes after.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from e2e_cluster import conversation
from openai_cluster import OpenAICluster

pytestmark = [pytest.mark.e2e, pytest.mark.model]

HI: Any = [{"role": "user", "content": "Say hi."}]
BOMB = {"type": "object", "properties": {"bio": {"type": "string", "maxLength": 10_000_000}}}


def still_serving(cluster: OpenAICluster, client: OpenAI, agent_ids: set[str]) -> None:
    answer = client.chat.completions.create(model="m", messages=HI, max_completion_tokens=4)
    assert answer.choices[0].message.content
    agents = cluster.agents_snapshot()
    assert {a["id"] for a in agents} == agent_ids
    for agent in agents:
        assert agent["slots_total"] > 0
        assert not any("EngineWorkerCrashed" in json.dumps(i) for i in agent["issues"])


def test_openai_bombs_are_400s_naming_the_field(
    openai_cluster: OpenAICluster, client: OpenAI
) -> None:
    agent_ids = {a["id"] for a in openai_cluster.agents_snapshot()}
    tool: Any = {"type": "function", "function": {"name": "save", "parameters": BOMB}}
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="m", messages=HI, tools=[tool], tool_choice="required")
    assert info.value.param == "tools[0].function.parameters.properties.bio.maxLength"
    fmt: Any = {"type": "json_schema", "json_schema": {"name": "x", "schema": BOMB}}
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="m", messages=HI, response_format=fmt)
    assert info.value.param == "response_format.json_schema.schema.properties.bio.maxLength"
    still_serving(openai_cluster, client, agent_ids)


def test_native_grammar_bombs_are_400s_before_dispatch(
    openai_cluster: OpenAICluster, client: OpenAI
) -> None:
    """Refused before any agent sees them: such a grammar could outgrow an agent-socket frame."""
    agent_ids = {a["id"] for a in openai_cluster.agents_snapshot()}
    base = f"{openai_cluster.inference_url}/api/v1"
    deep = "root ::= " + '("a" ' * 30_000 + ")?" * 30_000
    for grammar, expected in (
        ({"type": "json_schema", "schema": json.dumps(BOMB)}, "maxLength"),
        ({"type": "gbnf", "grammar": deep, "root": "root"}, "nests groups"),
    ):
        for path, body in (
            ("continue_from_conversation_history", conversation(grammar=grammar)),
            ("continue_from_raw_prompt", {"raw_prompt": "Hi", "max_tokens": 4, "grammar": grammar}),
        ):
            response = openai_cluster.http.post(f"{base}/{path}", json=body, timeout=120.0)
            assert response.status_code == 400, response.text
            assert expected in response.text
    still_serving(openai_cluster, client, agent_ids)
