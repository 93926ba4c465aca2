"""Reconciler: desired state → a loaded engine, draining first (spec §5.3, DESIGN §5.4).

A swap never loses a request: the agent first reports ``slots_total: 0`` and waits for the
balancer's in-order acknowledgement (after which nothing more is dispatched here), keeps serving
whatever arrived meanwhile on the old engine, waits until nothing is in flight, and only then
closes the old engine and loads the new one.

An engine whose worker process dies is replaced by a fresh load of the same state, with
``EngineWorkerCrashed`` in the issues; the requests it was serving already ended with an error.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import anyio

from paddler._changes import Changes
from paddler.agent._config import AgentConfig
from paddler.agent._engine import Engine, EngineLoader, EngineSpec
from paddler.agent._sources import (
    DownloadProgress,
    ModelLoaded,
    ModelLoadFailed,
    ModelSourceError,
    SourceFailed,
    SourceResolved,
    issues_after,
    model_source_label,
    resolve_model,
)
from paddler.agent._status import AgentStatus
from paddler.errors import ShuttingDown
from paddler.wire import (
    AgentDesiredModel,
    AgentDesiredState,
    AgentIssue,
    AgentIssueParams,
    AgentStateApplicationStatus,
    ChatTemplateDoesNotCompile,
    EngineWorkerCrashed,
    ExtraBufferTypesDisabled,
    ModelCannotBeLoaded,
    ModelFileDoesNotExist,
    MultimodalProjectionCannotBeLoaded,
    NoModel,
    SlotCannotStart,
    UnableToFindChatTemplate,
)

__all__ = ["Reconciler", "ReconcilerHost", "load_issue", "load_issues"]

logger = logging.getLogger("paddler.agent")

RETRY_INTERVAL = 1.0
#: As Paddler: the first failed attempt is AttemptedAndRetrying, the second Stuck (retrying
#: goes on every second, so a fix such as a model file that appears is still picked up).
ATTEMPTS_BEFORE_STUCK = 2
DRAIN_ACK_TIMEOUT = 2.0

Status = AgentStateApplicationStatus


def load_issues(exc: Exception, model_path: str, slots: int) -> list[AgentIssue]:
    """The issues a load failure reports: ``SlotCannotStart`` once per slot, as Paddler."""
    issue = load_issue(exc, model_path)
    if isinstance(issue, SlotCannotStart):
        return [SlotCannotStart(error=issue.error, slot_index=i) for i in range(max(1, slots))]
    return [issue]


def load_issue(exc: Exception, model_path: str) -> AgentIssue:
    """Map an engine load failure to the issue the agent reports."""
    if "paddler.engine._errors" not in sys.modules:  # a custom loader's engine failed: its
        return ModelCannotBeLoaded(model_path=model_path)  # error is none of the engine's
    from paddler.engine import _errors as engine  # one exception per issue, not exported

    if isinstance(exc, engine.UnableToFindChatTemplate):
        return UnableToFindChatTemplate(model_path=model_path)
    if isinstance(exc, engine.ChatTemplateDoesNotCompile):
        return ChatTemplateDoesNotCompile(
            error=str(getattr(exc, "error", exc)),
            model_path=AgentIssueParams(model_path=model_path),
            template_content=str(getattr(exc, "template", "")),
        )
    if isinstance(exc, engine.SlotCannotStart):
        return SlotCannotStart(error=str(getattr(exc, "error", exc)), slot_index=0)
    if isinstance(exc, engine.MultimodalProjectionCannotBeLoaded):
        return MultimodalProjectionCannotBeLoaded(model_path=str(getattr(exc, "path", model_path)))
    return ModelCannotBeLoaded(model_path=model_path)


class ReconcilerHost(Protocol):
    """What the Reconciler needs from the agent it runs in: draining, and the engine seat."""

    def begin_drain(self) -> anyio.Event | None:
        """Report ``slots_total: 0`` now; the event fires once the balancer acknowledged it
        (``None``: no acknowledgement will come)."""

    async def wait_idle(self) -> None:
        """Return once no request is in flight."""

    async def stop_requests(self) -> int:
        """Stop every request in flight (each ends with ``Done``); return how many there were."""

    def swap_engine(self, engine: Engine | None) -> None:
        """Serve requests that arrive from now on with ``engine`` (``None``: no engine)."""


class Reconciler:
    """Applies each new desired state; retries every second until it sticks.

    The Reconciler owns the engine: it is the only caller of ``host.swap_engine``.
    """

    def __init__(
        self,
        host: ReconcilerHost,
        loader: EngineLoader,
        *,
        config: AgentConfig,
        status: AgentStatus,
    ) -> None:
        self._host = host
        self._loader = loader
        self._config = config
        self._status = status
        self._engine: Engine | None = None
        self._desired: AgentDesiredState | None = None
        #: Notified when the desired state or the applied state changes.
        self._changes = Changes()
        self._desired_version = 0
        self._applied: AgentDesiredState | None = None
        #: Set while the engine is being replaced (after a crash, or between a swap's drain and
        #: its load): requests that reach the agent then wait for the new engine rather than
        #: failing. In a swap those are the ones the balancer dispatched just before it saw
        #: the drain.
        self.restarting = False

    # -- inputs and waiting ----------------------------------------------------------------

    @property
    def desired(self) -> AgentDesiredState | None:
        """The latest desired state received."""
        return self._desired

    @property
    def applied(self) -> AgentDesiredState | None:
        """The desired state the current engine serves (``None`` while none is applied)."""
        return self._applied

    def set_desired(self, state: AgentDesiredState) -> None:
        """A desired state arrived; the same state again (a reconnect re-sends it) is ignored."""
        if state != self._desired:
            self._desired = state
            self._desired_version += 1
            self._changes.notify()

    async def wait_applied(self, state: AgentDesiredState | None = None) -> None:
        """Return once ``state`` (default: the latest received) is desired and applied.

        :raises ShuttingDown: if the Reconciler is closed first.
        """
        while True:
            target = self._desired if state is None else state
            if target is not None and self._applied == target == self._desired:
                return
            if self._changes.closed:
                raise ShuttingDown("the agent closed before the desired state was applied")
            await self._changes.wait_beyond(self._changes.version)

    def close(self) -> None:
        """The agent stopped (``run`` is cancelled): waiters get ``ShuttingDown``."""
        self._changes.close()

    def _set_applied(self, state: AgentDesiredState | None) -> None:
        if self._applied != state:
            self._applied = state
            self._changes.notify()

    async def _wait_desired_beyond(self, version: int) -> int:
        while self._desired_version <= version:
            await self._changes.wait_beyond(self._changes.version)
        return self._desired_version

    # -- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        seen = 0
        crash: str | None = None
        while True:
            if crash is None:
                seen = await self._wait_desired_beyond(seen)
            state = self._desired
            if state is None:
                crash = None
                continue
            restarting, crash = crash is not None, None
            async with anyio.create_task_group() as tg:

                async def cancel_on_change(scope: anyio.CancelScope, version: int) -> None:
                    await self._wait_desired_beyond(version)
                    scope.cancel()

                tg.start_soon(cancel_on_change, tg.cancel_scope, seen)
                try:
                    await self.apply(state, restarting=restarting)
                finally:
                    self._set_restarting(False)
                crash = await self._wait_engine_crash()
                tg.cancel_scope.cancel()
            if crash is not None:
                self._engine_crashed(crash)

    def _set_restarting(self, restarting: bool) -> None:
        if self.restarting != restarting:
            self.restarting = restarting
            self._status.changes.notify()

    def _swap(self, engine: Engine | None) -> Engine | None:
        old, self._engine = self._engine, engine
        self._host.swap_engine(engine)
        return old

    async def _wait_engine_crash(self) -> str | None:
        """Wait while the engine serves; return how its worker died (never, if closed)."""
        engine = self._engine
        crash = None if engine is None else await engine.wait_stopped()
        if crash is None:  # no model, or closed on purpose (a swap, the agent stopping)
            await anyio.sleep_forever()
        return crash

    def _engine_crashed(self, how: str) -> None:
        logger.error("the engine worker %s; loading the model again", how)
        self._swap(None)
        self._set_applied(None)
        self.restarting = True
        status = self._status
        issues: list[AgentIssue] = [
            i for i in status.issues if not isinstance(i, EngineWorkerCrashed)
        ]
        issues.append(EngineWorkerCrashed(error=f"the engine worker {how}; it was restarted"))
        status.update(
            issues=tuple(issues),
            slots_total=0,
            state_application_status=Status.FRESH,
        )

    async def apply(self, state: AgentDesiredState, *, restarting: bool = False) -> None:
        status = self._status
        await self._drain()
        # As Paddler, applying a state starts with no issues; what is still wrong is found
        # again. Only a restart after a crash keeps saying that the worker crashed.
        status.update(
            issues=tuple(i for i in status.issues if isinstance(i, EngineWorkerCrashed))
            if restarting
            else ()
        )
        status.update(
            state_application_status=Status.FRESH,
            model_path=None,
            slots_total=0,
            download_current=0,
            download_total=0,
            download_filename=None,
            download_indeterminate=True,
        )
        self._set_applied(None)
        attempts = 0
        while True:
            attempts += 1
            outcome = await self._attempt(state)
            if outcome is True:
                self._set_applied(state)
                return
            self._set_restarting(False)  # requests waiting for an engine fail now
            if outcome is None:  # not appliable until the state changes
                status.update(state_application_status=Status.ATTEMPTED_AND_NOT_APPLIABLE)
                await anyio.sleep_forever()
            status.update(
                state_application_status=(
                    Status.STUCK
                    if attempts >= ATTEMPTS_BEFORE_STUCK
                    else Status.ATTEMPTED_AND_RETRYING
                )
            )
            await anyio.sleep(RETRY_INTERVAL)

    async def _drain(self) -> None:
        if self._engine is None:
            return
        host = self._host
        ack = host.begin_drain()
        if ack is not None:
            with anyio.move_on_after(DRAIN_ACK_TIMEOUT):
                await ack.wait()
        with anyio.move_on_after(self._config.drain_timeout) as waited:
            await host.wait_idle()
        if waited.cancelled_caught:
            stopped = await host.stop_requests()
            logger.warning(
                "%d request(s) were still running after %.0f s of draining; stopped them",
                stopped,
                self._config.drain_timeout,
            )
            with anyio.move_on_after(DRAIN_ACK_TIMEOUT):
                await host.wait_idle()
        engine = self._swap(None)
        self._set_restarting(True)
        if engine is not None:
            with anyio.CancelScope(shield=True):
                await engine.aclose()

    async def _resolve_projection(
        self, state: AgentDesiredState, progress: Callable[[DownloadProgress], None]
    ) -> Path:
        """The mmproj as a local file, fetched like the model (spec §5.3). A local file that
        is missing is ``MultimodalProjectionCannotBeLoaded``, as Paddler reports it."""
        try:
            path = await self._fetch(state.multimodal_projection, progress)
        except ModelSourceError as exc:
            if isinstance(exc.issue, ModelFileDoesNotExist):
                raise ModelSourceError(
                    MultimodalProjectionCannotBeLoaded(model_path=exc.issue.model_path),
                    f"multimodal projection {exc.issue.model_path} does not exist on this agent",
                ) from exc
            raise
        assert path is not None  # not NoModel
        return path

    async def _fetch(
        self, source: AgentDesiredModel, progress: Callable[[DownloadProgress], None]
    ) -> Path | None:
        """``resolve_model`` with this agent's cache; the download fields are cleared after."""
        path = await resolve_model(source, on_progress=progress, cache_dir=self._config.cache_dir)
        self._status.update(
            download_current=0,
            download_total=0,
            download_filename=None,
            download_indeterminate=False,
        )
        return path

    async def _attempt(self, state: AgentDesiredState) -> bool | None:
        """True when applied, False to retry, None when retrying cannot help."""
        config, status = self._config, self._status
        label = model_source_label(state.model)

        def progress(update: DownloadProgress) -> None:
            status.update(
                download_filename=update.filename,
                download_current=update.current,
                download_total=update.total or 0,
                download_indeterminate=update.total is None,
            )

        try:
            path = await self._fetch(state.model, progress)
        except ModelSourceError as exc:
            logger.warning("model source failed: %s", exc)
            status.update(issues=issues_after(status.issues, SourceFailed(exc.issue)))
            return False if exc.retryable else None
        status.update(issues=issues_after(status.issues, SourceResolved(label)))
        override = state.chat_template_override
        if path is None:
            status.update(
                state_application_status=Status.APPLIED,
                uses_chat_template_override=override is not None,
            )
            return True
        projection: Path | None = None
        if not isinstance(state.multimodal_projection, NoModel):
            try:
                projection = await self._resolve_projection(state, progress)
            except ModelSourceError as exc:
                logger.warning("multimodal projection source failed: %s", exc)
                status.update(issues=issues_after(status.issues, SourceFailed(exc.issue)))
                return False if exc.retryable else None
        spec = EngineSpec(
            model_path=Path(path),
            parameters=state.inference_parameters,
            slots=config.slots,
            chat_template_override=override.content if override is not None else None,
            multimodal_projection=projection,
            extra_buffer_types=config.extra_buffer_types,
            threads=config.threads,
            stall_timeout=config.engine_stall_timeout,
        )
        try:
            engine = await self._loader(spec)
        except Exception as exc:
            logger.warning("model load failed: %s", exc)
            self._set_restarting(False)
            first, *more = load_issues(exc, str(path), config.slots)
            after = issues_after(status.issues, ModelLoadFailed(first))
            status.update(issues=(*after, *(i for i in more if i not in after)))
            return False
        self._swap(engine)
        self._set_restarting(False)
        issues: list[AgentIssue] = [
            i
            for i in issues_after(status.issues, ModelLoaded())
            if not isinstance(i, ExtraBufferTypesDisabled)
        ]
        fault = engine.extra_buffer_types_fault
        if fault is not None:
            issues.append(ExtraBufferTypesDisabled(error=fault))
        status.update(
            issues=tuple(issues),
            model_path=str(path),
            slots_total=config.slots,
            uses_chat_template_override=override is not None,
            state_application_status=Status.APPLIED,
        )
        return True
