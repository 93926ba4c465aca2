"""Resumable download of one model URL into the agent's cache (spec §5.3).

Bytes go to ``<hash>.partial`` and are resumed with ``Range: bytes=N-``; the finished file is
renamed to ``<hash>``. A ``<hash>.lock`` file lock makes one process per host the downloader:
another agent asking for the same URL waits for it and then uses the finished file. There is
no retry in here; the agent's reconcile loop is the retry, and every failure becomes the
:class:`~paddler.wire.AgentIssue` that explains it.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import anyio
import filelock
import httpx
from attrs import frozen

from paddler.errors import PaddlerError
from paddler.wire import (
    AgentIssue,
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
)

from ._cache_dir import UrlCachePaths, url_cache_paths
from ._download_size import (
    DEFAULT_MAX_DOWNLOAD_SIZE,
    MAX_DOWNLOAD_SIZE_ENV,
    max_download_size_from_env,
    parse_byte_size,
)

__all__ = [
    "DEFAULT_MAX_DOWNLOAD_SIZE",
    "MAX_DOWNLOAD_SIZE_ENV",
    "DownloadProgress",
    "DownloadProgressCallback",
    "ModelSourceError",
    "check_url",
    "download_url",
    "max_download_size_from_env",
    "os_error_issue",
    "parse_byte_size",
    "too_large",
]

logger = logging.getLogger("paddler.agent")

#: Connect and read timeouts of the download client, in seconds (as Paddler's).
TIMEOUT_SECONDS = 10.0
#: Bytes handed to the disk per write; small enough for steady progress reports.
CHUNK_BYTES = 256 * 1024
#: How often an agent waiting for another downloader checks the lock again.
LOCK_POLL_SECONDS = 0.1

#: Redirects followed before the server counts as broken (httpx's default).
MAX_REDIRECTS = 20

_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")


@frozen
class DownloadProgress:
    """How far a download is; ``total`` is ``None`` while the size is unknown."""

    filename: str | None
    current: int
    total: int | None


DownloadProgressCallback = Callable[[DownloadProgress], None]


class ModelSourceError(PaddlerError):
    """The model could not be made local; ``issue`` is what the agent reports.

    ``retryable`` is ``False`` when retrying cannot help until the desired state changes
    (a malformed URL, a Hugging Face file that does not exist).
    """

    def __init__(self, issue: AgentIssue, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.issue = issue
        self.retryable = retryable


class _Restart(Exception):
    """The partial file was discarded; download again from byte zero."""


def too_large(model_path: str, size: int, limit: int, *, known: bool = True) -> ModelSourceError:
    """The issue of a model past the agent's download cap (retrying cannot help)."""
    what = f"is {size} bytes" if known else f"sent more than {limit} bytes"
    return ModelSourceError(
        CacheStorageIsFull(model_path=model_path),
        f"{model_path} {what}; this agent downloads at most {limit} bytes "
        f"(paddler agent --max-download-size, or {MAX_DOWNLOAD_SIZE_ENV})",
        retryable=False,
    )


def check_url(url: str) -> httpx.URL:
    """Parse ``url``; only absolute http(s) URLs with a host are accepted."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise _malformed(url, f"cannot parse it ({exc})") from exc
    if parsed.scheme not in ("http", "https"):
        raise _malformed(url, "only http:// and https:// URLs can be downloaded")
    if not parsed.host:
        raise _malformed(url, "it has no host")
    return parsed


def _malformed(url: str, why: str) -> ModelSourceError:
    return ModelSourceError(
        DownloadUrlIsMalformed(model_path=url),
        f"model URL {url!r} is malformed: {why}",
        retryable=False,
    )


async def download_url(
    url: str,
    *,
    on_progress: DownloadProgressCallback,
    cache_dir: Path | None = None,
    client: httpx.AsyncClient | None = None,
    max_size: int | None = None,
) -> Path:
    """Return the local path of ``url``, downloading it into the cache if needed.

    Nothing is drawn: progress goes to ``on_progress`` (the CLI draws its bar from the
    agent's status) and to the ``paddler.agent`` logger at DEBUG.

    :param client: an ``httpx.AsyncClient`` to use (tests pass one with a transport).
    :param max_size: refuse a model larger than this many bytes (``None``: no cap), from its
        announced size before any byte is written, else once that many bytes have arrived.
    :raises ModelSourceError: with the issue that explains the failure.
    """
    parsed = check_url(url)
    paths = url_cache_paths(url, cache_dir)
    with _map_os_errors(url):
        if paths.final.is_file():
            return paths.final
        await anyio.to_thread.run_sync(lambda: paths.directory.mkdir(parents=True, exist_ok=True))
    filename = parsed.path.rsplit("/", 1)[-1] or url
    async with _download_lock(paths, url, filename, on_progress):
        with _map_os_errors(url):
            if paths.final.is_file():
                return paths.final  # another process finished it while we waited
        async with _client(client) as http:
            fetch = _Fetch(http, url, paths, filename, on_progress, max_size)
            try:
                await fetch.once()
            except _Restart:
                await fetch.once()
    return paths.final


@asynccontextmanager
async def _client(client: httpx.AsyncClient | None) -> AsyncIterator[httpx.AsyncClient]:
    if client is not None:
        yield client
        return
    timeout = httpx.Timeout(TIMEOUT_SECONDS)
    async with httpx.AsyncClient(
        timeout=timeout, follow_redirects=True, max_redirects=MAX_REDIRECTS
    ) as owned:
        yield owned


@asynccontextmanager
async def _download_lock(
    paths: UrlCachePaths, url: str, filename: str, on_progress: DownloadProgressCallback
) -> AsyncIterator[None]:
    """Hold ``<hash>.lock``; while another process holds it, report its partial's growth."""
    lock = filelock.FileLock(paths.lock)
    reported: int | None = None
    while not _try_acquire(lock, url):
        size = _size(paths.partial)
        if size != reported:  # report growth only, not every poll
            logger.debug("waiting for another downloader of %s (%d bytes so far)", url, size)
            on_progress(DownloadProgress(filename, size, None))
            reported = size
        await anyio.sleep(LOCK_POLL_SECONDS)
    try:
        yield
    finally:
        lock.release()


def _try_acquire(lock: filelock.BaseFileLock, url: str) -> bool:
    """Take the lock if it is free; ``False`` while another process holds it."""
    with _map_os_errors(url):
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:  # a TimeoutError, hence an OSError: keep it out of the mapping
            return False
    return True


@frozen
class _Fetch:
    """One download attempt's parameters; ``once()`` is one GET."""

    http: httpx.AsyncClient
    url: str
    paths: UrlCachePaths
    filename: str
    on_progress: DownloadProgressCallback
    max_size: int | None

    async def once(self) -> None:
        """One GET (resuming the partial if there is one), written through to the final file.

        Every failure leaves as a `ModelSourceError` (or `_Restart`): the agent's reconcile
        loop must never see an httpx exception (a redirect loop, a body that does not decode).
        """
        url, paths = self.url, self.paths
        with _map_os_errors(url):
            start = _size(paths.partial)
        headers = {"Accept-Encoding": "identity"}  # byte offsets must be offsets in the file
        if start:
            headers["Range"] = f"bytes={start}-"
        receiving = False
        try:
            async with self.http.stream("GET", url, headers=headers) as response:
                offset, total = _check_response(response, url, paths, start)
                self._check_size(total)
                receiving = True
                await _receive(
                    response,
                    url,
                    paths,
                    self.filename,
                    offset,
                    total,
                    self.on_progress,
                    self.max_size,
                )
        except httpx.TooManyRedirects as exc:
            raise ModelSourceError(
                DownloadServerErrored(model_path=url),
                f"the server of {url} redirected more than {MAX_REDIRECTS} times",
            ) from exc
        except httpx.DecodingError as exc:
            self._discard_partial()  # decoded bytes are not offsets of the file: start over
            raise ModelSourceError(
                DownloadServerErrored(model_path=url),
                f"the server of {url} sent a body that cannot be decoded ({exc})",
            ) from exc
        except httpx.TransportError as exc:
            if receiving:
                raise ModelSourceError(
                    DownloadInterrupted(model_path=url),
                    f"download of {url} was interrupted ({exc or type(exc).__name__}); "
                    "it resumes from the partial file on the next attempt",
                ) from exc
            raise ModelSourceError(
                DownloadServerIsUnreachable(model_path=url),
                f"cannot reach the server of {url} ({exc or type(exc).__name__})",
            ) from exc
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
            raise ModelSourceError(
                DownloadServerErrored(model_path=url),
                f"the server of {url} answered in a way that cannot be used "
                f"({type(exc).__name__}: {exc})",
            ) from exc
        except ModelSourceError as exc:
            if isinstance(exc.issue, CacheStorageIsFull) and not exc.retryable:
                self._discard_partial()  # past the cap: the bytes so far are no use
            raise

    def _check_size(self, total: int | None) -> None:
        if self.max_size is not None and total is not None and total > self.max_size:
            raise too_large(self.url, total, self.max_size)

    def _discard_partial(self) -> None:
        with _map_os_errors(self.url):
            self.paths.partial.unlink(missing_ok=True)


def _check_response(
    response: httpx.Response, url: str, paths: UrlCachePaths, start: int
) -> tuple[int, int | None]:
    """Decide where the body goes: ``(offset in the partial, total size or None)``."""
    status = response.status_code
    if status == 416:
        with _map_os_errors(url):
            paths.partial.unlink(missing_ok=True)
        raise ModelSourceError(
            ModelCacheIsCorrupted(model_path=url),
            f"the server of {url} refused to resume at byte {start} (HTTP 416); "
            "the stale partial file was removed",
        )
    if status >= 400 or status not in (200, 206):
        raise ModelSourceError(_issue_for_status(status, url), _status_message(status, url))
    if status == 206:
        match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
        if not start or match is None or int(match.group(1)) != start:
            logger.warning(
                "server of %s answered Range bytes=%d- with Content-Range %r; restarting",
                url,
                start,
                response.headers.get("content-range"),
            )
            with _map_os_errors(url):
                paths.partial.unlink(missing_ok=True)
            raise _Restart
        size = match.group(3)
        return start, (int(size) if size != "*" else None)
    if start:
        logger.info("server of %s ignored the Range request; downloading from zero", url)
    length = response.headers.get("content-length")
    identity = response.headers.get("content-encoding", "identity") == "identity"
    return 0, (int(length) if length and length.isdigit() and identity else None)


async def _receive(
    response: httpx.Response,
    url: str,
    paths: UrlCachePaths,
    filename: str,
    offset: int,
    total: int | None,
    on_progress: DownloadProgressCallback,
    max_size: int | None = None,
) -> None:
    current = offset
    logger.debug(
        "downloading %s from byte %d of %s",
        url,
        offset,
        total if total is not None else "an unknown size",
        extra={"url": url, "offset": offset, "total": total},
    )
    on_progress(DownloadProgress(filename, current, total))
    with _map_os_errors(url):
        async with await anyio.open_file(paths.partial, "r+b" if offset else "wb") as file:
            if offset:
                await file.seek(offset)
                await file.truncate()
            pending = bytearray()
            try:
                async for chunk in response.aiter_bytes():
                    pending += chunk
                    if max_size is not None and current + len(pending) > max_size:
                        pending.clear()
                        raise too_large(url, current, max_size, known=False)
                    if len(pending) >= CHUNK_BYTES:
                        await file.write(pending)
                        current += len(pending)
                        pending.clear()
                        on_progress(DownloadProgress(filename, current, total))
            finally:  # keep every byte received, also when the stream breaks: it resumes there
                with anyio.CancelScope(shield=True):
                    await file.write(pending)
                    await file.flush()
            if pending:
                current += len(pending)
                on_progress(DownloadProgress(filename, current, total))
            await anyio.to_thread.run_sync(os.fsync, file.wrapped.fileno())
        if total is not None and current != total:
            raise ModelSourceError(
                DownloadInterrupted(model_path=url),
                f"download of {url} ended at byte {current} of {total}",
            )
        await anyio.to_thread.run_sync(_publish, paths)
    logger.info(
        "downloaded %s to %s (%d bytes)",
        url,
        paths.final,
        current,
        extra={"url": url, "path": str(paths.final), "bytes": current},
    )


def _publish(paths: UrlCachePaths) -> None:
    """Rename the complete partial to its final name, durably."""
    os.replace(paths.partial, paths.final)
    fd = os.open(paths.directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _issue_for_status(status: int, url: str) -> AgentIssue:
    if status == 404:
        return ModelDoesNotExistAtUrl(model_path=url)
    if status in (401, 403):
        return DownloadServerDeniedAccess(model_path=url)
    if 400 <= status < 500:
        return DownloadServerRejectedRequest(model_path=url)
    return DownloadServerErrored(model_path=url)


def _status_message(status: int, url: str) -> str:
    reason = httpx.codes.get_reason_phrase(status) or "unexpected status"
    return f"GET {url} answered HTTP {status} {reason}"


_FULL = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG})


def os_error_issue(exc: OSError, model_path: str) -> ModelSourceError:
    """The issue of a disk failure in the cache: ENOSPC/EDQUOT → full, the rest → not writable."""
    if exc.errno in _FULL:
        return ModelSourceError(
            CacheStorageIsFull(model_path=model_path),
            f"no space left in the model cache for {model_path}: {exc}",
        )
    return ModelSourceError(
        CacheDirectoryIsNotWritable(model_path=model_path),
        f"the model cache cannot be used for {model_path}: {exc} "
        "(set PADDLER_CACHE_DIR to a writable directory)",
    )


@contextmanager
def _map_os_errors(model_path: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise os_error_issue(exc, model_path) from exc
