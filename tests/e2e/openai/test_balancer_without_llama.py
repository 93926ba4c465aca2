"""The balancer process runs without llama.cpp: tools and JSON schemas still work end to end.

Every ``OpenAICluster`` balancer starts with a ``llama_cpp`` package that raises on import first
on its ``PYTHONPATH`` (``openai_cluster.without_llama``); the agent loads the real one. So each
OpenAI end-to-end test proves it; these ones say so, and check that the shadow really bites.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import jsonschema
from openai import OpenAI
from openai_cluster import NO_LLAMA_MESSAGE, OpenAICluster

WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
PERSON: Any = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def test_llama_cpp_cannot_be_imported_in_the_balancer(openai_cluster: OpenAICluster) -> None:
    """The balancer's environment makes ``import llama_cpp`` fail, and the balancer is up."""
    env = {**os.environ, **openai_cluster.balancer_env}
    tried = subprocess.run(
        [sys.executable, "-c", "import llama_cpp"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert tried.returncode != 0
    assert NO_LLAMA_MESSAGE in tried.stderr
    assert openai_cluster.balancer is not None and openai_cluster.balancer.alive


def test_forced_tool_call_and_json_schema_without_llama_in_the_balancer(
    openai_cluster: OpenAICluster, client: OpenAI
) -> None:
    """A named tool_choice comes back as that call and a json_schema answer matches its schema;
    the agent's engine built both grammars."""
    called = client.chat.completions.create(
        model="smol",
        messages=[{"role": "user", "content": "What's the weather in Oslo?"}],
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_tokens=48,
        temperature=0,
    )
    (call,) = called.choices[0].message.tool_calls or []
    assert call.type == "function" and call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments)["city"], str)
    shaped = client.chat.completions.create(
        model="smol",
        messages=[{"role": "user", "content": "Invent a person."}],
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": PERSON}},
        max_tokens=48,
        temperature=0,
    )
    jsonschema.validate(json.loads(shaped.choices[0].message.content or ""), PERSON)
    assert openai_cluster.balancer is not None
    assert NO_LLAMA_MESSAGE not in openai_cluster.balancer.log()
