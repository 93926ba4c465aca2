"""AgentConfig: what one agent is told when it starts (the CLI's ``paddler agent`` flags)."""

from __future__ import annotations

from pathlib import Path

import attrs

from paddler.wire import DEFAULT_POOL, validate_pool_name

__all__ = ["AgentConfig"]


@attrs.frozen
class AgentConfig:
    """``management_url`` is ``ws://host:port`` (or ``inproc://name``); durations in seconds."""

    management_url: str
    slots: int
    name: str | None = None
    agent_id: str | None = None
    reconnect_interval: float = 1.0
    status_interval: float = 1.0
    cache_dir: Path | None = None
    #: False turns off llama.cpp's optional CPU kernels (AMX, repacking), like
    #: ``llama-server --no-repack``; the engine also falls back by itself when they crash.
    extra_buffer_types: bool = True
    #: llama.cpp's CPU threads (None: the engine's default). Agents sharing a machine should
    #: split its cores between them: llama.cpp's threads spin while they wait.
    threads: int | None = None
    #: Kill an engine worker that is busy but silent this long (None: the engine's default).
    engine_stall_timeout: float | None = None
    #: A swap waits this long for requests in flight, then stops them (they end with Done).
    drain_timeout: float = 300.0
    #: The model pool it joins (``paddler agent --pool``), sent in the socket's handshake;
    #: a name off ``paddler.wire.POOL_NAME_RULE`` is refused here (``InvalidRequest``).
    pool: str = attrs.field(default=DEFAULT_POOL, validator=lambda _, __, v: validate_pool_name(v))
