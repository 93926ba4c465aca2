"""Chat with a Paddler cluster through the official ``openai`` SDK, whole and streamed.

Run a cluster first (``paddler demo``), then ``python examples/openai_chat.py [BASE_URL]``.
The base URL defaults to ``$PADDLER_OPENAI_BASE_URL`` or the demo's ``http://127.0.0.1:8063/v1``.
"""

from __future__ import annotations

import os
import sys

from openai import OpenAI

BASE_URL = os.environ.get("PADDLER_OPENAI_BASE_URL", "http://127.0.0.1:8063/v1")


def main(base_url: str = BASE_URL) -> None:
    # Paddler has no authentication; the SDK insists on some key.
    client = OpenAI(base_url=base_url, api_key="unused")
    model = client.models.list().data[0].id
    print(f"model: {model}")

    answer = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": "Name three colours of the rainbow."},
        ],
        max_completion_tokens=48,
        temperature=0,  # per-request sampling is honoured
    )
    print(answer.choices[0].message.content)
    print(f"usage: {answer.usage}")

    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "Write one sentence about the sea."}],
        max_completion_tokens=48,
        stop=["\n\n"],
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            print(chunk.choices[0].delta.content, end="", flush=True)
        if chunk.usage is not None:
            print(f"\n[{chunk.usage.completion_tokens} tokens]")


if __name__ == "__main__":
    main(*sys.argv[1:2])
