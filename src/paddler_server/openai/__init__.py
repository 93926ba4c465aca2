"""The OpenAI-compatible API (``--compat-openai-addr``): chat, responses, completions,
embeddings and models over the balancer."""

from paddler_server.openai._app import create_openai_app

__all__ = ["create_openai_app"]
