"""Every way a download can go wrong is an agent issue, never an exception; sizes are capped."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from paddler.agent._cache_dir import url_cache_paths
from paddler.agent._download import MAX_DOWNLOAD_SIZE_ENV, parse_byte_size
from paddler.agent._sources import ModelSourceError, resolve_model
from paddler.wire import (
    CacheStorageIsFull,
    DownloadServerErrored,
    DownloadServerIsUnreachable,
    HuggingFaceModel,
    UrlModel,
)

from ._fileserver import FileServer, Route

pytestmark = pytest.mark.anyio


async def failure(url: str, cache_dir: Path, **kwargs: object) -> ModelSourceError:
    with pytest.raises(ModelSourceError) as info:
        await resolve_model(
            UrlModel(url=url),
            on_progress=lambda _: None,
            cache_dir=cache_dir,
            **kwargs,  # type: ignore[arg-type]
        )
    return info.value


async def test_redirect_loop_is_a_server_error(file_server: FileServer, cache_dir: Path):
    """httpx.TooManyRedirects (not a TransportError) used to escape and end the agent."""
    url = file_server.add("/loop.gguf", Route(status=302, headers={"Location": "/loop.gguf"}))
    error = await failure(url, cache_dir)
    assert error.issue == DownloadServerErrored(model_path=url)
    assert "redirected more than 20 times" in str(error)
    assert error.retryable


async def test_body_that_does_not_decode_is_a_server_error(
    file_server: FileServer, cache_dir: Path
):
    """A gzip Content-Encoding over bytes that are not gzip (httpx.DecodingError)."""
    garbage = random.Random(3).randbytes(4096)
    url = file_server.add("/gz.gguf", Route(body=garbage, headers={"Content-Encoding": "gzip"}))
    error = await failure(url, cache_dir)
    assert error.issue == DownloadServerErrored(model_path=url)
    assert "cannot be decoded" in str(error)
    assert not url_cache_paths(url, cache_dir).partial.exists()


async def test_reset_connection_is_unreachable(file_server: FileServer, cache_dir: Path):
    url = file_server.add("/reset.gguf", Route(reset=True))
    error = await failure(url, cache_dir)
    assert error.issue == DownloadServerIsUnreachable(model_path=url)


async def test_answer_that_is_not_http_is_unreachable(file_server: FileServer, cache_dir: Path):
    url = file_server.add("/junk.gguf", Route(garbage=b"\x00\xffnot http at all\r\n\r\n"))
    error = await failure(url, cache_dir)
    assert error.issue == DownloadServerIsUnreachable(model_path=url)


@pytest.mark.parametrize("location", ["http://[::1/x", "ftp://127.0.0.1/x.gguf", "http:///x"])
async def test_redirect_to_an_unusable_url_is_an_issue(
    file_server: FileServer, cache_dir: Path, location: str
):
    url = file_server.add("/bad-redirect.gguf", Route(status=301, headers={"Location": location}))
    error = await failure(url, cache_dir)
    assert isinstance(error.issue, DownloadServerErrored | DownloadServerIsUnreachable)
    assert error.issue.model_path == url


async def test_announced_size_past_the_cap_is_refused_before_any_byte(
    file_server: FileServer, cache_dir: Path, model_bytes: bytes
):
    url = file_server.add("/big.gguf", Route(body=model_bytes))
    error = await failure(url, cache_dir, max_download_size=1000)
    assert error.issue == CacheStorageIsFull(model_path=url)
    assert f"is {len(model_bytes)} bytes" in str(error)
    assert "--max-download-size" in str(error)
    assert not error.retryable  # a new desired state (or a bigger cap) is needed
    paths = url_cache_paths(url, cache_dir)
    assert not paths.partial.exists() and not paths.final.exists()


async def test_unannounced_size_past_the_cap_stops_the_download(
    file_server: FileServer, cache_dir: Path, model_bytes: bytes
):
    """Without a Content-Length the bytes are counted; the partial is removed."""
    url = file_server.add("/stream.gguf", Route(body=model_bytes, no_length=True))
    error = await failure(url, cache_dir, max_download_size=300_000)
    assert error.issue == CacheStorageIsFull(model_path=url)
    assert "sent more than 300000 bytes" in str(error)
    assert not url_cache_paths(url, cache_dir).partial.exists()


async def test_cap_comes_from_the_environment(
    file_server: FileServer, cache_dir: Path, model_bytes: bytes, monkeypatch: pytest.MonkeyPatch
):
    """paddler agent --max-download-size sets PADDLER_MAX_DOWNLOAD_SIZE; 0 means no cap."""
    url = file_server.add("/env.gguf", Route(body=model_bytes))
    monkeypatch.setenv(MAX_DOWNLOAD_SIZE_ENV, "512KiB")
    error = await failure(url, cache_dir)
    assert error.issue == CacheStorageIsFull(model_path=url)
    monkeypatch.setenv(MAX_DOWNLOAD_SIZE_ENV, "0")
    path = await resolve_model(UrlModel(url=url), on_progress=lambda _: None, cache_dir=cache_dir)
    assert path is not None and path.read_bytes() == model_bytes


async def test_within_the_cap_a_download_completes(
    file_server: FileServer, cache_dir: Path, model_bytes: bytes
):
    url = file_server.add("/ok.gguf", Route(body=model_bytes, no_length=True))
    path = await resolve_model(
        UrlModel(url=url),
        on_progress=lambda _: None,
        cache_dir=cache_dir,
        max_download_size=len(model_bytes),
    )
    assert path is not None and path.read_bytes() == model_bytes


async def test_hugging_face_download_past_the_cap_is_refused(
    file_server: FileServer, tmp_path: Path, model_bytes: bytes, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("HF_ENDPOINT", file_server.base)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    file_server.add_hugging_face_file("org/big-GGUF", "big.gguf", model_bytes)
    model = HuggingFaceModel(repo_id="org/big-GGUF", revision="main", filename="big.gguf")
    with pytest.raises(ModelSourceError) as info:
        await resolve_model(model, on_progress=lambda _: None, max_download_size=1000)
    assert info.value.issue == CacheStorageIsFull(model_path="org/big-GGUF/big.gguf")
    assert not info.value.retryable


def test_parse_byte_size():
    assert parse_byte_size("1024") == 1024
    assert parse_byte_size("500MB") == 500_000_000
    assert parse_byte_size("64GiB") == 64 * 1024**3
    assert parse_byte_size("1.5 G") == 1_500_000_000
    assert parse_byte_size("0") == 0
    with pytest.raises(ValueError, match="not a size"):
        parse_byte_size("lots")
