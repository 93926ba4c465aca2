"""Problems an agent reports in its status (``AgentIssue``, spec §3.2).

Most variants carry ``{"model_path": ...}``; three carry other payloads. Two are ours, beyond
Paddler's set: ``EngineWorkerCrashed`` and ``ExtraBufferTypesDisabled`` (clients that read issues
as externally tagged enums, such as paddler-client, accept any variant).
"""

from __future__ import annotations

from attrs import frozen

__all__ = [
    "AgentIssue",
    "AgentIssueParams",
    "CacheCannotAcquireLock",
    "CacheDirectoryIsNotWritable",
    "CacheStorageIsFull",
    "ChatTemplateDoesNotCompile",
    "DownloadInterrupted",
    "DownloadServerDeniedAccess",
    "DownloadServerErrored",
    "DownloadServerIsUnreachable",
    "DownloadServerRejectedRequest",
    "DownloadUrlIsMalformed",
    "EngineWorkerCrashed",
    "ExtraBufferTypesDisabled",
    "HuggingFaceCannotAcquireLock",
    "HuggingFaceModelDoesNotExist",
    "HuggingFacePermissions",
    "ModelCacheIsCorrupted",
    "ModelCannotBeLoaded",
    "ModelDoesNotExistAtUrl",
    "ModelFileDoesNotExist",
    "MultimodalProjectionCannotBeLoaded",
    "SlotCannotStart",
    "UnableToFindChatTemplate",
]


@frozen
class AgentIssueParams:
    """The ``{"model_path": ...}`` object nested inside some issues."""

    model_path: str


@frozen
class CacheCannotAcquireLock:
    model_path: str


@frozen
class CacheDirectoryIsNotWritable:
    model_path: str


@frozen
class CacheStorageIsFull:
    model_path: str


@frozen
class DownloadInterrupted:
    model_path: str


@frozen
class DownloadServerDeniedAccess:
    model_path: str


@frozen
class DownloadServerErrored:
    model_path: str


@frozen
class DownloadServerIsUnreachable:
    model_path: str


@frozen
class DownloadServerRejectedRequest:
    model_path: str


@frozen
class DownloadUrlIsMalformed:
    model_path: str


@frozen
class ModelCacheIsCorrupted:
    model_path: str


@frozen
class ModelDoesNotExistAtUrl:
    model_path: str


@frozen
class HuggingFaceModelDoesNotExist:
    model_path: str


@frozen
class HuggingFacePermissions:
    model_path: str


@frozen
class ModelCannotBeLoaded:
    model_path: str


@frozen
class ModelFileDoesNotExist:
    model_path: str


@frozen
class MultimodalProjectionCannotBeLoaded:
    model_path: str


@frozen
class UnableToFindChatTemplate:
    model_path: str


@frozen(kw_only=True)
class ChatTemplateDoesNotCompile:
    error: str
    model_path: AgentIssueParams
    template_content: str


@frozen(kw_only=True)
class HuggingFaceCannotAcquireLock:
    lock_path: str
    model_path: AgentIssueParams


@frozen(kw_only=True)
class SlotCannotStart:
    error: str
    slot_index: int


@frozen(kw_only=True)
class EngineWorkerCrashed:
    """The engine worker process died while serving (a fault in llama.cpp); it was restarted."""

    error: str


@frozen(kw_only=True)
class ExtraBufferTypesDisabled:
    """llama.cpp's optional CPU kernels (AMX, repacking) crashed a load; running without them."""

    error: str


AgentIssue = (
    CacheCannotAcquireLock
    | CacheDirectoryIsNotWritable
    | CacheStorageIsFull
    | ChatTemplateDoesNotCompile
    | DownloadInterrupted
    | DownloadServerDeniedAccess
    | DownloadServerErrored
    | DownloadServerIsUnreachable
    | DownloadServerRejectedRequest
    | DownloadUrlIsMalformed
    | EngineWorkerCrashed
    | ExtraBufferTypesDisabled
    | HuggingFaceCannotAcquireLock
    | HuggingFaceModelDoesNotExist
    | HuggingFacePermissions
    | ModelCacheIsCorrupted
    | ModelCannotBeLoaded
    | ModelDoesNotExistAtUrl
    | ModelFileDoesNotExist
    | MultimodalProjectionCannotBeLoaded
    | SlotCannotStart
    | UnableToFindChatTemplate
)
