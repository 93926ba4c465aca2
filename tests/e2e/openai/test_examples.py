"""Every OpenAI and client example runs against a real cluster and prints what it promises."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.model]

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_openai_chat(openai_cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    load("openai_chat").main(openai_cluster.openai_url)
    out = capsys.readouterr().out
    assert "model: " in out and "tokens]" in out


def test_openai_tools(openai_cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    load("openai_tools").main(openai_cluster.openai_url)
    out = capsys.readouterr().out
    assert "finish_reason: tool_calls" in out
    assert "the model calls get_weather({'city':" in out


def test_openai_embeddings(embeddings_cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    load("openai_embeddings").main(embeddings_cluster.openai_url)
    assert "3 vectors of 576 dimensions" in capsys.readouterr().out


def test_client_streaming(openai_cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    module = load("client_streaming")
    anyio.run(module.main, openai_cluster.inference_url, openai_cluster.management_url)
    out = capsys.readouterr().out
    assert "[stopped after 20 tokens]" in out
    assert "busy slots now: 0" in out
    assert "cancelled; usage so far: TokenUsage(" in out
    assert "timed out; busy slots once the agent confirms: 0" in out
