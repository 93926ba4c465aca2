"""Embeddings through the ``openai`` SDK, as floats and as base64.

The cluster must be in embeddings mode (``enable_embeddings: true`` in the inference
parameters); otherwise the endpoint answers 501 saying so. Run
``python examples/openai_embeddings.py [BASE_URL]``.
"""

from __future__ import annotations

import math
import os
import sys

from openai import OpenAI

BASE_URL = os.environ.get("PADDLER_OPENAI_BASE_URL", "http://127.0.0.1:8063/v1")


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def main(base_url: str = BASE_URL) -> None:
    client = OpenAI(base_url=base_url, api_key="unused")
    texts = ["A cat sits on the mat.", "A kitten rests on a rug.", "Stock prices fell today."]
    # The SDK asks for base64 by default and decodes it; ask for floats explicitly too.
    packed = client.embeddings.create(model="any", input=texts)
    plain = client.embeddings.create(model="any", input=texts, encoding_format="float")
    vectors = [item.embedding for item in plain.data]
    print(f"{len(vectors)} vectors of {len(vectors[0])} dimensions")
    print(f"base64 and float agree: {packed.data[0].embedding[:3]} ~ {vectors[0][:3]}")
    similar, different = cosine(vectors[0], vectors[1]), cosine(vectors[0], vectors[2])
    print(f"cat~kitten {similar:.3f}, cat~stocks {different:.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
