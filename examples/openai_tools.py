"""Function calling through the ``openai`` SDK: the model calls a tool, we answer, it replies.

``tool_choice`` naming a function makes the agent's engine constrain the model with a grammar
that only admits a call to that function, so even a tiny model produces a well-formed call.
Run a cluster first (``paddler demo``), then ``python examples/openai_tools.py [BASE_URL]``.
"""

from __future__ import annotations

import json
import os
import sys

from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

BASE_URL = os.environ.get("PADDLER_OPENAI_BASE_URL", "http://127.0.0.1:8063/v1")

TOOLS: list[ChatCompletionToolParam] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    }
]


def get_weather(city: str) -> str:
    return json.dumps({"city": city, "forecast": "sunny", "celsius": 21})


def main(base_url: str = BASE_URL) -> None:
    client = OpenAI(base_url=base_url, api_key="unused")
    messages: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "What is the weather in Paris?"}
    ]
    first = client.chat.completions.create(
        model="any",
        messages=messages,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        max_completion_tokens=64,
    )
    choice = first.choices[0]
    print(f"finish_reason: {choice.finish_reason}")
    calls = choice.message.tool_calls or []
    messages.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.function.name, "arguments": c.function.arguments},
                }
                for c in calls
                if c.type == "function"
            ],
        }
    )
    for call in calls:
        if call.type != "function":
            continue
        arguments = json.loads(call.function.arguments)
        print(f"the model calls {call.function.name}({arguments})")
        messages.append(
            {"role": "tool", "tool_call_id": call.id, "content": get_weather(**arguments)}
        )
    final = client.chat.completions.create(
        model="any", messages=messages, tools=TOOLS, max_completion_tokens=64
    )
    print(final.choices[0].message.content)


if __name__ == "__main__":
    main(*sys.argv[1:2])
