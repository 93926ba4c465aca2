"""Turn an ``AgentDesiredModel`` into a local file (spec §5.3), and the rules that clear issues.

``resolve_model`` is the one entry point the agent's reconciler calls, once per attempt: it
returns a path (or ``None`` for no model) or raises :class:`ModelSourceError` carrying the
:class:`~paddler.wire.AgentIssue` to report. :func:`issues_after` says which reported issues
an outcome fixes (spec §3.2), so issues disappear once their cause is gone.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any, Literal

import anyio
from attrs import frozen

from paddler.wire import (
    AgentDesiredModel,
    AgentIssue,
    CacheCannotAcquireLock,
    CacheDirectoryIsNotWritable,
    CacheStorageIsFull,
    ChatTemplateDoesNotCompile,
    DownloadInterrupted,
    DownloadServerDeniedAccess,
    DownloadServerErrored,
    DownloadServerIsUnreachable,
    DownloadServerRejectedRequest,
    DownloadUrlIsMalformed,
    HuggingFaceCannotAcquireLock,
    HuggingFaceModel,
    HuggingFaceModelDoesNotExist,
    HuggingFacePermissions,
    LocalToAgentModel,
    ModelCacheIsCorrupted,
    ModelCannotBeLoaded,
    ModelDoesNotExistAtUrl,
    ModelFileDoesNotExist,
    MultimodalProjectionCannotBeLoaded,
    NoModel,
    SlotCannotStart,
    UnableToFindChatTemplate,
    UrlModel,
)

from ._download import (
    DownloadProgress,
    DownloadProgressCallback,
    ModelSourceError,
    download_url,
    max_download_size_from_env,
    os_error_issue,
    too_large,
)

__all__ = [
    "DownloadProgress",
    "DownloadProgressCallback",
    "IssueEvent",
    "ModelLoadFailed",
    "ModelLoaded",
    "ModelSourceError",
    "SourceFailed",
    "SourceResolved",
    "issue_model_path",
    "issues_after",
    "model_source_label",
    "resolve_model",
]

logger = logging.getLogger("paddler.agent")


def model_source_label(model: AgentDesiredModel) -> str | None:
    """The ``model_path`` that issues about ``model`` carry.

    The path for ``LocalToAgent``, the URL for ``Url``, ``<repo_id>/<filename>`` for
    ``HuggingFace`` (the revision is left out, as the cache lookup ignores it).
    """
    match model:
        case LocalToAgentModel(path=path):
            return path
        case UrlModel(url=url):
            return url
        case HuggingFaceModel(repo_id=repo_id, filename=filename):
            return f"{repo_id}/{filename}"
        case _:
            return None


async def resolve_model(
    model: AgentDesiredModel,
    *,
    on_progress: DownloadProgressCallback,
    cache_dir: Path | None = None,
    max_download_size: int | Literal["env"] | None = "env",
) -> Path | None:
    """The local file for ``model``, fetching it first if needed; ``None`` for ``NoModel``.

    Every failure is a `ModelSourceError` carrying an issue: a bad desired state never ends
    the agent (anything unforeseen becomes ``DownloadServerErrored`` or
    ``ModelFileDoesNotExist`` with the exception in the message).

    :param on_progress: called (on the event loop) as bytes arrive; only for downloads.
    :param cache_dir: overrides the URL cache directory (see ``default_cache_dir``);
        Hugging Face files use the standard HF cache (``HF_HOME``/``HF_HUB_CACHE``).
    :param max_download_size: refuse to download a model larger than this (bytes; ``None``:
        no cap); ``"env"``: ``PADDLER_MAX_DOWNLOAD_SIZE`` (set by ``paddler agent
        --max-download-size``), else 64 GiB. A file already local is used whatever its size.
    :raises ModelSourceError: with the issue to report.
    """
    limit = max_download_size_from_env() if max_download_size == "env" else max_download_size
    try:
        return await _resolve(model, on_progress, cache_dir, limit)
    except ModelSourceError:
        raise
    except Exception as exc:
        label = model_source_label(model) or repr(model)
        logger.exception("unexpected failure while resolving %s", label)
        issue: AgentIssue = (
            ModelFileDoesNotExist(model_path=label)
            if isinstance(model, LocalToAgentModel)
            else DownloadServerErrored(model_path=label)
        )
        raise ModelSourceError(issue, f"cannot get {label}: {type(exc).__name__}: {exc}") from exc


async def _resolve(
    model: AgentDesiredModel,
    on_progress: DownloadProgressCallback,
    cache_dir: Path | None,
    limit: int | None,
) -> Path | None:
    match model:
        case NoModel():
            return None
        case LocalToAgentModel(path=path):
            if not await anyio.to_thread.run_sync(os.path.isfile, path):
                raise ModelSourceError(
                    ModelFileDoesNotExist(model_path=path),
                    f"model file {path} does not exist on this agent",
                )
            return Path(path)
        case UrlModel(url=url):
            return await download_url(
                url,
                on_progress=on_progress,
                cache_dir=cache_dir,
                max_size=limit,
            )
        case HuggingFaceModel():
            return await _resolve_hugging_face(model, on_progress, limit)
    raise TypeError(f"not an AgentDesiredModel: {model!r}")


# ---- Hugging Face ---------------------------------------------------------------------------


async def _resolve_hugging_face(
    model: HuggingFaceModel,
    on_progress: DownloadProgressCallback,
    limit: int | None = None,
) -> Path:
    """Through ``huggingface_hub``: a cached file is used straight away, else it is downloaded.

    ``HF_HOME``/``HF_HUB_CACHE``, ``HF_ENDPOINT`` and ``HF_TOKEN`` are read at call time (the
    hub library reads them once at import).
    """
    label = f"{model.repo_id}/{model.filename}"
    kwargs: dict[str, Any] = {
        "repo_id": model.repo_id,
        "filename": model.filename,
        "revision": model.revision,
        "cache_dir": _hf_cache_dir(),
        "endpoint": os.environ.get("HF_ENDPOINT") or None,
        "token": os.environ.get("HF_TOKEN") or None,
    }
    cached = await anyio.to_thread.run_sync(_hf_cached, kwargs)
    if cached is not None:
        return cached
    tqdm_class = _progress_tqdm(model.filename, on_progress, label, limit)
    try:
        path = await anyio.to_thread.run_sync(
            partial(_hf_download, kwargs, tqdm_class), abandon_on_cancel=True
        )
    except ModelSourceError:
        raise
    except Exception as exc:
        raise _hf_error(exc, label) from exc
    return path


def _hf_cache_dir() -> str:
    explicit = os.environ.get("HF_HUB_CACHE")
    if explicit:
        return explicit
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return os.path.join(home, "hub")


def _hf_cached(kwargs: dict[str, Any]) -> Path | None:
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(**kwargs, local_files_only=True))
    except Exception:  # not cached (LocalEntryNotFoundError) or an unusable cache entry
        return None


def _hf_download(kwargs: dict[str, Any], tqdm_class: type[Any]) -> Path:
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(**kwargs, tqdm_class=tqdm_class))


def _progress_tqdm(
    filename: str,
    on_progress: DownloadProgressCallback,
    label: str = "",
    limit: int | None = None,
) -> type[Any]:
    """A tqdm class that forwards the hub's byte counts to ``on_progress`` (from its thread).

    The hub reports progress only through a tqdm class; this one is always disabled (the
    library draws nothing) and counts bytes itself, since a disabled tqdm ignores ``update``.
    Past ``limit`` bytes (announced or received) it raises the too-large `ModelSourceError`,
    which ends the hub's download.
    """
    import importlib

    from anyio.from_thread import run_sync as on_loop

    base: Any = importlib.import_module("tqdm.auto").tqdm  # untyped library

    class ProgressTqdm(base):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)
            kwargs["disable"] = True
            self._bytes = int(kwargs.get("initial") or 0)
            total = kwargs.get("total")
            self._size = int(total) if total else None
            if limit is not None and self._size is not None and self._size > limit:
                raise too_large(label, self._size, limit)
            super().__init__(*args, **kwargs)
            self._report()

        def update(self, n: float | None = 1) -> bool | None:
            self._bytes += int(n or 0)
            if limit is not None and self._bytes > limit:
                raise too_large(label, self._bytes, limit, known=False)
            shown: bool | None = super().update(n)
            self._report()
            return shown

        def _report(self) -> None:
            progress = DownloadProgress(filename, self._bytes, self._size)
            try:
                on_loop(on_progress, progress)
            except RuntimeError:  # not called from an anyio worker thread
                on_progress(progress)

    return ProgressTqdm


def _hf_error(exc: BaseException, label: str) -> ModelSourceError:
    """Map a ``huggingface_hub`` failure (or the HTTP error behind it) to its issue."""
    from huggingface_hub.errors import (
        GatedRepoError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    chain = list(_exception_chain(exc))
    for error in chain:
        if isinstance(error, GatedRepoError):
            return ModelSourceError(
                HuggingFacePermissions(model_path=label),
                f"Hugging Face repository of {label} is gated; set HF_TOKEN to an account "
                f"that has accepted its terms ({error})",
            )
        missing = RepositoryNotFoundError | RemoteEntryNotFoundError | RevisionNotFoundError
        if isinstance(error, missing):  # not LocalEntryNotFoundError: that only says "not cached"
            status = _status_of(error)
            if status in (401, 403):
                break  # the hub hides private repos behind 401; treat as permissions below
            return ModelSourceError(
                HuggingFaceModelDoesNotExist(model_path=label),
                f"{label} does not exist on Hugging Face ({type(error).__name__})",
                retryable=False,
            )
    statuses = [s for s in map(_status_of, chain) if s is not None]
    if any(s in (401, 403) for s in statuses):
        return ModelSourceError(
            HuggingFacePermissions(model_path=label),
            f"Hugging Face denied access to {label} (HTTP {statuses[0]}); check HF_TOKEN",
        )
    if 404 in statuses:
        return ModelSourceError(
            HuggingFaceModelDoesNotExist(model_path=label),
            f"{label} does not exist on Hugging Face (HTTP 404)",
            retryable=False,
        )
    if any(s >= 500 for s in statuses):
        return ModelSourceError(
            DownloadServerErrored(model_path=label),
            f"Hugging Face answered HTTP {statuses[0]} for {label}",
        )
    if statuses:
        return ModelSourceError(
            DownloadServerRejectedRequest(model_path=label),
            f"Hugging Face answered HTTP {statuses[0]} for {label}",
        )
    for error in chain:
        if isinstance(error, OSError) and error.errno is not None:  # the disk, not HTTP
            return os_error_issue(error, label)
    return ModelSourceError(
        DownloadServerIsUnreachable(model_path=label),
        f"cannot download {label} from Hugging Face: {exc}",
    )


def _exception_chain(exc: BaseException) -> Iterable[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _status_of(error: BaseException) -> int | None:
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


# ---- which outcomes fix which issues (spec §3.2) ----------------------------------------------

#: Issues that fetching or finding the model file can raise (cleared when that succeeds).
SOURCE_ISSUES: tuple[type[Any], ...] = (
    CacheCannotAcquireLock,
    CacheDirectoryIsNotWritable,
    CacheStorageIsFull,
    DownloadInterrupted,
    DownloadServerDeniedAccess,
    DownloadServerErrored,
    DownloadServerIsUnreachable,
    DownloadServerRejectedRequest,
    DownloadUrlIsMalformed,
    HuggingFaceCannotAcquireLock,
    HuggingFaceModelDoesNotExist,
    HuggingFacePermissions,
    ModelCacheIsCorrupted,
    ModelDoesNotExistAtUrl,
    ModelFileDoesNotExist,
)
#: Issues that loading the model raises (cleared by a successful load).
LOAD_ISSUES: tuple[type[Any], ...] = (
    ChatTemplateDoesNotCompile,
    ModelCannotBeLoaded,
    MultimodalProjectionCannotBeLoaded,
    SlotCannotStart,
    UnableToFindChatTemplate,
)


@frozen
class SourceResolved:
    """The wanted model (``model_path``, a ``model_source_label``) is now a local file."""

    model_path: str | None


@frozen
class SourceFailed:
    """Resolving a model failed with ``issue``."""

    issue: AgentIssue


@frozen
class ModelLoaded:
    """The engine loaded the model and its slots started."""


@frozen
class ModelLoadFailed:
    """Loading failed with ``issue`` (``ModelCannotBeLoaded``, a template issue, ...)."""

    issue: AgentIssue


IssueEvent = SourceResolved | SourceFailed | ModelLoaded | ModelLoadFailed


def issue_model_path(issue: AgentIssue) -> str | None:
    """The model an issue is about (``None`` for ``SlotCannotStart``)."""
    path = getattr(issue, "model_path", None)
    if isinstance(path, str):
        return path
    return getattr(path, "model_path", None)


def issues_after(issues: Iterable[AgentIssue], event: IssueEvent) -> tuple[AgentIssue, ...]:
    """The issues still standing after ``event``, in order, without duplicates.

    * a source resolved: every source issue goes (the wanted model is local now; issues about
      models wanted earlier are moot);
    * a source failed: its issue replaces the source issues about the same model;
    * the model loaded: every load issue goes;
    * a load failed: its issue replaces the earlier load issues.
    """
    kept: list[AgentIssue] = []
    for issue in issues:
        if isinstance(event, SourceResolved) and isinstance(issue, SOURCE_ISSUES):
            continue
        if (
            isinstance(event, SourceFailed)
            and isinstance(issue, SOURCE_ISSUES)
            and issue_model_path(issue) == issue_model_path(event.issue)
        ):
            continue
        if isinstance(event, ModelLoaded | ModelLoadFailed) and isinstance(issue, LOAD_ISSUES):
            continue
        if issue not in kept:
            kept.append(issue)
    if isinstance(event, SourceFailed | ModelLoadFailed) and event.issue not in kept:
        kept.append(event.issue)
    return tuple(kept)
