"""The panel's model-URI parsing and parameter validation, run in Chromium (no cluster)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from paddler.wire import InferenceParameters, KvCacheDtype, PoolingType, converter
from paddler_server._options import parse_address
from paddler_server._settings import BalancerSettings
from paddler_server.admin_panel import create_admin_panel_app

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def panel_only(browser_context: Any) -> Iterator[Any]:
    """A tab on a panel served alone (its management address leads nowhere)."""
    nowhere = parse_address("127.0.0.1:9")
    app = create_admin_panel_app(BalancerSettings(management_addr=nowhere, inference_addr=nowhere))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "panel server did not start"
        time.sleep(0.01)  # uvicorn offers no event to wait on from another thread
    port = server.servers[0].sockets[0].getsockname()[1]
    page = browser_context.new_page()
    page.goto(f"http://127.0.0.1:{port}/model")
    try:
        yield page
    finally:
        page.close()
        server.should_exit = True
        thread.join(timeout=10)


def parse(page: Any, uri: str) -> Any:
    return page.evaluate(
        "async (uri) => (await import('/static/desired_state.js')).parseModelUri(uri)", uri
    )


@pytest.mark.parametrize(
    ("uri", "model"),
    [
        ("", "None"),
        ("   ", "None"),
        (
            "https://huggingface.co/Qwen/Qwen3-0.6B-GGUF/blob/main/Qwen3-0.6B-Q8_0.gguf",
            {
                "HuggingFace": {
                    "repo_id": "Qwen/Qwen3-0.6B-GGUF",
                    "revision": "main",
                    "filename": "Qwen3-0.6B-Q8_0.gguf",
                }
            },
        ),
        (
            "https://huggingface.co/o/r/resolve/abc123/sub/dir/m.gguf?download=true",
            {"HuggingFace": {"repo_id": "o/r", "revision": "abc123", "filename": "sub/dir/m.gguf"}},
        ),
        ("agent:///models/smol.gguf", {"LocalToAgent": "/models/smol.gguf"}),
        ("https://example.com/m.gguf", {"Url": {"url": "https://example.com/m.gguf"}}),
        ("http://10.0.0.5:8000/m.gguf", {"Url": {"url": "http://10.0.0.5:8000/m.gguf"}}),
    ],
)
def test_model_uris_become_wire_models(panel_only: Any, uri: str, model: Any) -> None:
    """Each accepted form maps to its externally tagged AgentDesiredModel (spec §2.5)."""
    assert parse(panel_only, uri) == {"model": model}


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("agent://models/smol.gguf", "must be absolute"),
        ("agent:/models/smol.gguf", "three slashes"),
        ("ftp://example.com/m.gguf", "Hugging Face file URL"),
        ("/models/smol.gguf", "Hugging Face file URL"),
        ("https://huggingface.co/Qwen/Qwen3-0.6B-GGUF", "huggingface.co/<owner>/<repo>/blob"),
        ("https://", "cannot be parsed"),
    ],
)
def test_bad_model_uris_are_explained(panel_only: Any, uri: str, message: str) -> None:
    result = parse(panel_only, uri)
    assert "model" not in result
    assert message in result["error"]


@pytest.mark.parametrize(
    ("key", "raw", "outcome"),
    [
        ("context_size", "4096", {"value": 4096}),
        ("context_size", "0", {"error": "Must be at least 1."}),
        ("context_size", "1.5", {"error": "Must be a whole number."}),
        ("n_gpu_layers", "-1", {"value": -1}),
        ("n_gpu_layers", "-2", {"error": "Must be at least -1."}),
        ("temperature", "0", {"value": 0}),
        ("top_p", "1.01", {"error": "Must be between 0 and 1."}),
        ("min_p", "abc", {"error": "Must be a number, like 0.8."}),
        ("penalty_last_n", "", {"error": "Required."}),
        ("k_cache_dtype", "Q4_0", {"value": "Q4_0"}),
        (
            "pooling_type",
            "Median",
            {"error": "Choose one of Unspecified, None, Mean, Cls, Last, Rank."},
        ),
        ("enable_embeddings", True, {"value": True}),
    ],
)
def test_parameter_validation(panel_only: Any, key: str, raw: Any, outcome: Any) -> None:
    result = panel_only.evaluate(
        """async ([key, raw]) => {
            const m = await import('/static/desired_state.js');
            return m.parseParameter(m.PARAMETERS.find((p) => p.key === key), raw);
        }""",
        [key, raw],
    )
    assert result == outcome


def test_defaults_and_choices_match_the_wire_types(panel_only: Any) -> None:
    """The form has every InferenceParameters field with its default, and every enum value."""
    panel = panel_only.evaluate(
        """async () => {
            const m = await import('/static/desired_state.js');
            return [m.defaultParameters(), m.KV_CACHE_DTYPES, m.POOLING_TYPES];
        }"""
    )
    defaults, kv_dtypes, pooling_types = panel
    assert defaults == json.loads(converter.dumps(InferenceParameters()))
    assert sorted(kv_dtypes) == sorted(e.value for e in KvCacheDtype)
    assert sorted(pooling_types) == sorted(e.value for e in PoolingType)
