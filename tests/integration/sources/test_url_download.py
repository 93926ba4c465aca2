"""URL models: download with progress, resume, one download per host, and every failure's issue."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import anyio
import pytest

from paddler.agent._cache_dir import url_cache_paths
from paddler.agent._sources import DownloadProgress, ModelSourceError, resolve_model
from paddler.wire import (
    CacheDirectoryIsNotWritable,
    CacheStorageIsFull,
    DownloadInterrupted,
    DownloadServerDeniedAccess,
    DownloadServerErrored,
    DownloadServerIsUnreachable,
    DownloadServerRejectedRequest,
    DownloadUrlIsMalformed,
    ModelCacheIsCorrupted,
    ModelDoesNotExistAtUrl,
    UrlModel,
)

from ._fileserver import Route

pytestmark = pytest.mark.anyio


async def resolve(url: str, cache_dir: Path, progress: list[DownloadProgress] | None = None):
    seen = progress if progress is not None else []
    return await resolve_model(UrlModel(url=url), on_progress=seen.append, cache_dir=cache_dir)


async def test_url_model_downloads_with_progress(file_server, cache_dir, model_bytes):
    """The file lands under downloaded-models/<sha256(url)> and progress climbs to the total."""
    url = file_server.add("/models/tiny.gguf", Route(body=model_bytes))
    progress: list[DownloadProgress] = []

    path = await resolve(url, cache_dir, progress)

    assert path == url_cache_paths(url, cache_dir).final
    assert path.read_bytes() == model_bytes
    assert progress[0] == DownloadProgress("tiny.gguf", 0, len(model_bytes))
    assert progress[-1] == DownloadProgress("tiny.gguf", len(model_bytes), len(model_bytes))
    assert [p.current for p in progress] == sorted(p.current for p in progress)
    assert not url_cache_paths(url, cache_dir).partial.exists()


async def test_cached_file_is_used_without_a_request(file_server, cache_dir, model_bytes):
    """A second resolve of a finished download makes no request and reports no progress."""
    url = file_server.add("/m.gguf", Route(body=model_bytes))
    await resolve(url, cache_dir)
    progress: list[DownloadProgress] = []

    await resolve(url, cache_dir, progress)

    assert len(file_server.seen("/m.gguf")) == 1
    assert progress == []


async def test_download_resumes_after_the_server_drops_the_connection(
    file_server, cache_dir, model_bytes
):
    """A mid-file drop is DownloadInterrupted; the retry asks for the rest with Range."""
    cut = 300_000
    url = file_server.add("/big.gguf", Route(body=model_bytes, drop_after=cut))

    with pytest.raises(ModelSourceError) as caught:
        await resolve(url, cache_dir)
    assert caught.value.issue == DownloadInterrupted(model_path=url)
    partial = url_cache_paths(url, cache_dir).partial
    assert partial.stat().st_size == cut

    progress: list[DownloadProgress] = []
    path = await resolve(url, cache_dir, progress)

    second = file_server.seen("/big.gguf")[1]
    assert second.headers["Range"] == f"bytes={cut}-"
    assert progress[0].current == cut
    assert path.read_bytes() == model_bytes


async def test_server_ignoring_range_restarts_from_zero(file_server, cache_dir, model_bytes):
    """A 200 answer to a Range request replaces the partial instead of appending to it."""
    url = file_server.add("/norange.gguf", Route(body=model_bytes, ignore_range=True))
    paths = url_cache_paths(url, cache_dir)
    paths.directory.mkdir(parents=True)
    paths.partial.write_bytes(b"stale bytes from another file")

    path = await resolve(url, cache_dir)

    assert file_server.seen("/norange.gguf")[0].headers["Range"] == "bytes=29-"
    assert path.read_bytes() == model_bytes


async def test_mismatched_content_range_discards_the_partial(file_server, cache_dir, model_bytes):
    """A 206 starting elsewhere than asked is not trusted: the download starts over from zero."""
    url = file_server.add("/shifted.gguf", Route(body=model_bytes, wrong_content_range=True))
    paths = url_cache_paths(url, cache_dir)
    paths.directory.mkdir(parents=True)
    paths.partial.write_bytes(b"12345")

    path = await resolve(url, cache_dir)

    first, second = file_server.seen("/shifted.gguf")
    assert first.headers["Range"] == "bytes=5-"
    assert "Range" not in second.headers
    assert path.read_bytes() == model_bytes


async def test_416_removes_the_stale_partial(file_server, cache_dir, model_bytes):
    """Asking to resume past the end gets 416: the partial goes and the issue says so."""
    url = file_server.add("/done.gguf", Route(body=model_bytes[:1000]))
    paths = url_cache_paths(url, cache_dir)
    paths.directory.mkdir(parents=True)
    paths.partial.write_bytes(model_bytes[:5000])

    with pytest.raises(ModelSourceError) as caught:
        await resolve(url, cache_dir)

    assert caught.value.issue == ModelCacheIsCorrupted(model_path=url)
    assert not paths.partial.exists()
    assert (await resolve(url, cache_dir)).read_bytes() == model_bytes[:1000]


@pytest.mark.parametrize(
    ("status", "issue_class"),
    [
        (404, ModelDoesNotExistAtUrl),
        (401, DownloadServerDeniedAccess),
        (403, DownloadServerDeniedAccess),
        (400, DownloadServerRejectedRequest),
        (410, DownloadServerRejectedRequest),
        (500, DownloadServerErrored),
        (503, DownloadServerErrored),
    ],
)
async def test_http_status_maps_to_its_issue(file_server, cache_dir, status, issue_class):
    """Each failing status becomes the issue that names it, and nothing is left in the cache."""
    url = file_server.add("/x.gguf", Route(status=status))

    with pytest.raises(ModelSourceError) as caught:
        await resolve(url, cache_dir)

    assert caught.value.issue == issue_class(model_path=url)
    assert caught.value.retryable
    assert str(status) in str(caught.value)
    assert not url_cache_paths(url, cache_dir).final.exists()


async def test_unreachable_host(cache_dir, free_port):
    """Nothing listening on the port: DownloadServerIsUnreachable."""
    url = f"http://127.0.0.1:{free_port}/m.gguf"

    with pytest.raises(ModelSourceError) as caught:
        await resolve(url, cache_dir)

    assert caught.value.issue == DownloadServerIsUnreachable(model_path=url)


@pytest.mark.parametrize(
    "url", ["ftp://example.com/m.gguf", "not a url", "http:///no-host.gguf", "file:///m.gguf"]
)
async def test_malformed_url(cache_dir, url):
    """Only http(s) URLs with a host are accepted; retrying cannot help."""
    with pytest.raises(ModelSourceError) as caught:
        await resolve(url, cache_dir)

    assert caught.value.issue == DownloadUrlIsMalformed(model_path=url)
    assert not caught.value.retryable


async def test_unusable_cache_directory(file_server, tmp_path, model_bytes):
    """A cache path under a regular file (ENOTDIR) is CacheDirectoryIsNotWritable.

    Tests run as root, so a chmod'ed directory would still be writable; a path whose parent is
    a file fails the same way for every user.
    """
    url = file_server.add("/m.gguf", Route(body=model_bytes))
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")

    with pytest.raises(ModelSourceError) as caught:
        await resolve(url, blocker / "cache")

    assert caught.value.issue == CacheDirectoryIsNotWritable(model_path=url)
    assert "PADDLER_CACHE_DIR" in str(caught.value)
    assert file_server.seen("/m.gguf") == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
async def test_full_disk(file_server, cache_dir, model_bytes):
    """Writes failing with ENOSPC (the partial is /dev/full) give CacheStorageIsFull."""
    url = file_server.add("/m.gguf", Route(body=model_bytes))
    paths = url_cache_paths(url, cache_dir)
    paths.directory.mkdir(parents=True)
    paths.partial.symlink_to("/dev/full")

    with pytest.raises(ModelSourceError) as caught:
        await resolve(url, cache_dir)

    assert caught.value.issue == CacheStorageIsFull(model_path=url)


async def test_two_resolves_of_one_url_download_once(file_server, cache_dir, model_bytes):
    """The second resolver waits on the file lock and then uses the first one's file."""
    hold = threading.Event()
    url = file_server.add("/shared.gguf", Route(body=model_bytes, hold=hold))
    paths: list[Path | None] = []
    waiting = anyio.Event()

    def on_progress(progress: DownloadProgress) -> None:
        if progress.total is None:  # only a waiter reports without a total here
            waiting.set()

    async def one() -> None:
        path = await resolve_model(UrlModel(url=url), on_progress=on_progress, cache_dir=cache_dir)
        paths.append(path)

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(one)
            tg.start_soon(one)
            await waiting.wait()
            await anyio.to_thread.run_sync(file_server.got_request.wait, 10)
            hold.set()

    assert len(file_server.seen("/shared.gguf")) == 1
    assert paths[0] == paths[1]
    assert paths[0] is not None and paths[0].read_bytes() == model_bytes


async def test_cancelled_download_keeps_its_bytes_and_frees_the_lock(
    file_server, cache_dir, model_bytes
):
    """A resolve cancelled mid-file (the desired state changed) leaves a resumable partial."""
    hold = threading.Event()
    cut = 300_000
    url = file_server.add("/cancel.gguf", Route(body=model_bytes, stall_after=cut, hold=hold))
    some_bytes = anyio.Event()

    def on_progress(progress: DownloadProgress) -> None:
        if progress.current > 0:
            some_bytes.set()

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                lambda: resolve_model(
                    UrlModel(url=url),
                    on_progress=on_progress,
                    cache_dir=cache_dir,
                )
            )
            await some_bytes.wait()
            tg.cancel_scope.cancel()
    hold.set()

    kept = url_cache_paths(url, cache_dir).partial.stat().st_size
    assert 0 < kept <= cut  # every byte read before the cancellation, whole
    with anyio.fail_after(20):  # the lock is free: this does not wait
        path = await resolve(url, cache_dir)
    assert file_server.seen("/cancel.gguf")[1].headers["Range"] == f"bytes={kept}-"
    assert path.read_bytes() == model_bytes
