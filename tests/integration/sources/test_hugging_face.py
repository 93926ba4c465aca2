"""Hugging Face models through huggingface_hub, with HF_ENDPOINT pointing at a local server."""

from __future__ import annotations

from pathlib import Path

import pytest

from paddler.agent._sources import DownloadProgress, ModelSourceError, resolve_model
from paddler.wire import HuggingFaceModel, HuggingFaceModelDoesNotExist, HuggingFacePermissions

from ._fileserver import FileServer, Route

pytestmark = pytest.mark.anyio

REPO = "paddler-tests/tiny-GGUF"
FILE = "tiny.Q4_1.gguf"
LABEL = f"{REPO}/{FILE}"


@pytest.fixture
def hub(file_server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FileServer:
    """HF_ENDPOINT at the local server, HF_HOME in a fresh directory, no token."""
    monkeypatch.setenv("HF_ENDPOINT", file_server.base)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    return file_server


def model(filename: str = FILE) -> HuggingFaceModel:
    return HuggingFaceModel(repo_id=REPO, revision="main", filename=filename)


async def test_download_lands_in_hf_home_with_progress(hub, model_bytes, tmp_path):
    """The file is fetched from /<repo>/resolve/<rev>/<file> into $HF_HOME/hub, with progress."""
    hub.add_hugging_face_file(REPO, FILE, model_bytes)
    progress: list[DownloadProgress] = []

    path = await resolve_model(model(), on_progress=progress.append)

    assert path is not None and path.read_bytes() == model_bytes
    assert path.is_relative_to(tmp_path / "hf-home" / "hub")
    assert progress[-1] == DownloadProgress(FILE, len(model_bytes), len(model_bytes))
    assert hub.seen(f"/{REPO}/resolve/main/{FILE}", "HEAD")


async def test_cached_file_is_used_without_the_network(hub, model_bytes):
    """Once cached, the file is used straight away: no request reaches the hub."""
    hub.add_hugging_face_file(REPO, FILE, model_bytes)
    first = await resolve_model(model(), on_progress=lambda _: None)
    before = len(hub.requests)

    second = await resolve_model(model(), on_progress=lambda _: None)

    assert second == first
    assert len(hub.requests) == before


async def test_token_from_hf_token_is_sent(hub, model_bytes, monkeypatch):
    """HF_TOKEN, read at call time, goes out as a bearer token."""
    monkeypatch.setenv("HF_TOKEN", "hf_secret_for_test")
    hub.add_hugging_face_file(REPO, FILE, model_bytes)

    await resolve_model(model(), on_progress=lambda _: None)

    head = hub.seen(f"/{REPO}/resolve/main/{FILE}", "HEAD")[0]
    headers = {name.lower(): value for name, value in head.headers.items()}
    assert headers.get("authorization") == "Bearer hf_secret_for_test"


@pytest.mark.parametrize("error_code", ["RepoNotFound", "EntryNotFound"])
async def test_missing_model_is_hugging_face_model_does_not_exist(hub, error_code):
    """404 (repo or file): HuggingFaceModelDoesNotExist, not retried until the state changes."""
    hub.add(
        f"/{REPO}/resolve/main/{FILE}",
        Route(status=404, headers={"X-Error-Code": error_code}),
    )

    with pytest.raises(ModelSourceError) as caught:
        await resolve_model(model(), on_progress=lambda _: None)

    assert caught.value.issue == HuggingFaceModelDoesNotExist(model_path=LABEL)
    assert not caught.value.retryable


@pytest.mark.parametrize(
    ("status", "headers"),
    [(403, {"X-Error-Code": "GatedRepo"}), (403, {}), (401, {})],
)
async def test_denied_access_is_hugging_face_permissions(hub, status, headers):
    """401/403 (gated or private repo, bad token) gives HuggingFacePermissions."""
    hub.add(f"/{REPO}/resolve/main/{FILE}", Route(status=status, headers=headers))

    with pytest.raises(ModelSourceError) as caught:
        await resolve_model(model(), on_progress=lambda _: None)

    assert caught.value.issue == HuggingFacePermissions(model_path=LABEL)
    assert caught.value.retryable
