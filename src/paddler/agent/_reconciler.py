"""Reconciler: desired state → a loaded engine, draining first (spec §5.3, DESIGN §5.4).

A swap never loses a request: the agent first reports ``slots_total: 0`` and waits for the
balancer's in-order acknowledgement (after which nothing more is dispatched here), keeps serving
whatever arrived meanwhile on the old engine, waits until nothing is in flight, and only then
closes the old engine and loads the new one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

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
from paddler.wire import (
    AgentDesiredState,
    AgentIssue,
    AgentIssueParams,
    AgentStateApplicationStatus,
    ChatTemplateDoesNotCompile,
    ModelCannotBeLoaded,
    NoModel,
    SlotCannotStart,
    UnableToFindChatTemplate,
)

if TYPE_CHECKING:
    from paddler.agent._agent import Agent

__all__ = ["EngineLoader", "Reconciler", "load_issue"]

logger = logging.getLogger("paddler.agent")

EngineLoader = Callable[..., Awaitable[Any]]
"""``await loader(model_path, parameters, *, slots, chat_template_override)`` → engine."""

RETRY_INTERVAL = 1.0
ATTEMPTS_BEFORE_STUCK = 3
DRAIN_ACK_TIMEOUT = 2.0

Status = AgentStateApplicationStatus


def load_issue(exc: Exception, model_path: str) -> AgentIssue:
    """Map an engine load failure to the issue the agent reports."""
    from paddler import engine

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
    return ModelCannotBeLoaded(model_path=model_path)


class Reconciler:
    """Applies each new desired state; retries every second until it sticks."""

    def __init__(self, agent: Agent, loader: EngineLoader) -> None:
        self._agent = agent
        self._loader = loader
        self.applied: AgentDesiredState | None = None

    async def run(self) -> None:
        agent = self._agent
        seen = 0
        while True:
            seen = await agent._desired_changed.wait_beyond(seen)
            state = agent.desired_state
            if state is None:
                continue
            async with anyio.create_task_group() as tg:

                async def cancel_on_change(scope: anyio.CancelScope, version: int) -> None:
                    await agent._desired_changed.wait_beyond(version)
                    scope.cancel()

                tg.start_soon(cancel_on_change, tg.cancel_scope, seen)
                await self.apply(state)
                tg.cancel_scope.cancel()

    async def apply(self, state: AgentDesiredState) -> None:
        agent = self._agent
        status = agent.status
        await self._drain()
        status.update(
            state_application_status=Status.FRESH,
            model_path=None,
            slots_total=0,
            download_current=0,
            download_total=0,
            download_filename=None,
            download_indeterminate=False,
        )
        self.applied = None
        attempts = 0
        while True:
            attempts += 1
            outcome = await self._attempt(state)
            if outcome is True:
                self.applied = state
                return
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
        agent = self._agent
        if agent.engine is None:
            return
        ack = agent._begin_drain()
        if ack is not None:
            with anyio.move_on_after(DRAIN_ACK_TIMEOUT):
                await ack.wait()
        await agent._wait_idle()
        engine, agent.engine = agent.engine, None
        if engine is not None:
            with anyio.CancelScope(shield=True):
                await engine.aclose()

    async def _attempt(self, state: AgentDesiredState) -> bool | None:
        """True when applied, False to retry, None when retrying cannot help."""
        agent = self._agent
        status = agent.status
        label = model_source_label(state.model)
        if not isinstance(state.multimodal_projection, NoModel):
            logger.warning("multimodal projections are not supported yet; ignoring it")

        def progress(update: DownloadProgress) -> None:
            status.update(
                download_filename=update.filename,
                download_current=update.current,
                download_total=update.total or 0,
                download_indeterminate=update.total is None,
            )

        try:
            path = await resolve_model(
                state.model,
                on_progress=progress,
                cache_dir=agent.config.cache_dir,
                progress_bar=agent.config.progress_bar,
            )
        except ModelSourceError as exc:
            logger.warning("model source failed: %s", exc)
            status.update(issues=issues_after(status.issues, SourceFailed(exc.issue)))
            return False if exc.retryable else None
        status.update(
            issues=issues_after(status.issues, SourceResolved(label)),
            download_current=0,
            download_total=0,
            download_filename=None,
            download_indeterminate=False,
        )
        override = state.chat_template_override
        if path is None:
            status.update(
                state_application_status=Status.APPLIED,
                uses_chat_template_override=override is not None,
            )
            return True
        try:
            engine = await self._loader(
                Path(path),
                state.inference_parameters,
                slots=agent.config.slots,
                chat_template_override=override.content if override is not None else None,
            )
        except Exception as exc:
            logger.warning("model load failed: %s", exc)
            issue = load_issue(exc, str(path))
            status.update(issues=issues_after(status.issues, ModelLoadFailed(issue)))
            return False
        agent.engine = engine
        status.update(
            issues=issues_after(status.issues, ModelLoaded()),
            model_path=str(path),
            slots_total=agent.config.slots,
            uses_chat_template_override=override is not None,
            state_application_status=Status.APPLIED,
        )
        return True
