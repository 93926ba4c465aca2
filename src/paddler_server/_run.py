"""The async runners behind ``paddler balancer`` and ``paddler agent``, and signal handling.

The CLI owns SIGINT/SIGTERM: the first one sets a shutdown event (open streams end with an
``Error`` 503 envelope, sockets close with 1001 "going away", servers stop accepting), and
the process exits within ``EXIT_DEADLINE`` seconds whatever is still running. A second
signal exits at once.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import attrs
import click

from paddler_server._limits import ConnectionLimit, ServerLimits
from paddler_server._logging import reapply_logging
from paddler_server._options import Address

__all__ = [
    "AgentOptions",
    "BalancerOptions",
    "build_apps",
    "run_agent",
    "run_balancer",
    "run_until_signal",
]

logger = logging.getLogger("paddler_server.cli")

#: Seconds between the first signal and the process exiting, whatever is still running.
EXIT_DEADLINE = 4.5
#: Longest wait for open requests to send their last envelopes before the servers stop.
DRAIN_SECONDS = 3.0

T = TypeVar("T")


@attrs.frozen
class BalancerOptions:
    inference_addr: Address
    management_addr: Address
    compat_openai_addr: Address | None = None
    web_admin_panel_addr: Address | None = None
    buffered_request_timeout_ms: int = 10000
    inference_item_timeout_ms: int = 30000
    client_write_timeout_ms: int = 30000
    max_buffered_requests: int = 30
    inference_cors: tuple[str, ...] = ()
    management_cors: tuple[str, ...] = ()
    state_database: str = "memory://"
    statsd_addr: Address | None = None
    statsd_prefix: str = "paddler_"
    statsd_reporting_interval_ms: int = 10000
    served_model_name: str | None = None
    limits: ServerLimits = attrs.field(factory=ServerLimits)


@attrs.frozen
class AgentOptions:
    management_addr: Address
    slots: int
    name: str | None = None
    extra_buffer_types: bool = True
    threads: int | None = None
    engine_stall_timeout: float | None = None
    drain_timeout: float = 300.0


def run_until_signal(runner: Callable[[T, anyio.Event], Awaitable[None]], options: T) -> None:
    """Run ``runner(options, shutdown)`` until it returns or SIGINT/SIGTERM arrives."""

    async def main() -> None:
        shutdown = anyio.Event()
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:

                async def watch_signals() -> None:
                    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                        async for signum in signals:
                            if shutdown.is_set():
                                logger.warning("second signal, exiting now")
                                os._exit(130)
                            logger.info("shutting down signal=%s", signal.Signals(signum).name)
                            shutdown.set()
                            scope.deadline = anyio.current_time() + EXIT_DEADLINE

                tg.start_soon(watch_signals)
                await runner(options, shutdown)
                tg.cancel_scope.cancel()
        if scope.cancelled_caught:
            logger.warning("shutdown deadline reached, exiting with work still running")

    try:
        anyio.run(main, backend_options=_backend_options())
    except KeyboardInterrupt:
        pass
    except (Exception, BaseExceptionGroup) as exc:
        user_error = _user_error(exc)
        if user_error is None:
            raise
        if isinstance(user_error, click.ClickException):
            raise user_error from None
        raise click.ClickException(str(user_error)) from None


def _backend_options() -> dict[str, Any]:
    """uvloop when installed (a faster event loop for the servers); plain asyncio otherwise."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}


def _user_error(exc: BaseException) -> BaseException | None:
    """The one error worth a plain message (bad config, port in use), out of task groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, BaseExceptionGroup):
        found = [_user_error(inner) for inner in exc.exceptions]
        return next((inner for inner in found if inner is not None), None)
    if isinstance(exc, (click.ClickException, OSError)):
        return exc
    return None


def _panel_origin(address: Address | None) -> tuple[str, ...]:
    return () if address is None else (f"http://{address.original}",)


def build_apps(
    balancer: Any,
    options: BalancerOptions,
    *,
    metrics: Any,
    shutdown: anyio.Event,
) -> list[tuple[Any, str, int]]:
    """Every app the options ask for, as ``(app, host, port)`` for ``serve_apps``."""
    from paddler_server.inference import create_inference_app
    from paddler_server.management import create_management_app

    panel = _panel_origin(options.web_admin_panel_addr)
    inference_origins = [*options.inference_cors, *panel]
    limits = options.limits
    apps: list[tuple[Any, str, int]] = [
        (
            ConnectionLimit(
                create_inference_app(
                    balancer, cors_origins=inference_origins, shutdown=shutdown, limits=limits
                ),
                limits.max_connections,
                service="inference",
            ),
            options.inference_addr.host,
            options.inference_addr.port,
        ),
        (
            ConnectionLimit(
                create_management_app(
                    balancer,
                    cors_origins=[*options.management_cors, *panel],
                    metrics=metrics,
                    shutdown=shutdown,
                    limits=limits,
                ),
                limits.max_connections,
                service="management",
            ),
            options.management_addr.host,
            options.management_addr.port,
        ),
    ]
    if options.compat_openai_addr is not None:
        from paddler_server.openai import create_openai_app

        openai_app = create_openai_app(
            balancer,
            cors_origins=inference_origins,
            served_model_name=options.served_model_name,
            limits=limits,
            shutdown=shutdown,
        )
        limited = ConnectionLimit(openai_app, limits.max_connections, service="OpenAI")
        apps.append((limited, options.compat_openai_addr.host, options.compat_openai_addr.port))
    if options.web_admin_panel_addr is not None:
        from paddler_server.admin_panel import AdminPanelConfig, create_admin_panel_app

        panel_config = AdminPanelConfig(
            management_addr=options.management_addr.original,
            inference_addr=options.inference_addr.original,
            compat_openai_addr=(
                options.compat_openai_addr.original if options.compat_openai_addr else None
            ),
            buffered_request_timeout_ms=options.buffered_request_timeout_ms,
            max_buffered_requests=options.max_buffered_requests,
            statsd_addr=options.statsd_addr.original if options.statsd_addr else None,
            statsd_prefix=options.statsd_prefix,
            statsd_reporting_interval_ms=options.statsd_reporting_interval_ms,
        )
        addr = options.web_admin_panel_addr
        apps.append((create_admin_panel_app(panel_config), addr.host, addr.port))
    reapply_logging()  # apps built with Litestar's default logging config replace handlers
    return apps


def balancer_config(options: BalancerOptions, **extra: Any) -> Any:
    from paddler.balancer import BalancerConfig

    return BalancerConfig(
        buffered_request_timeout=options.buffered_request_timeout_ms / 1000,
        inference_item_timeout=options.inference_item_timeout_ms / 1000,
        client_write_timeout=options.client_write_timeout_ms / 1000,
        max_buffered_requests=options.max_buffered_requests,
        **extra,
    )


async def serve_balancer(
    options: BalancerOptions,
    shutdown: anyio.Event,
    *,
    config_extra: dict[str, Any] | None = None,
    on_ready: Callable[[Any], Awaitable[None]] | None = None,
) -> None:
    """Open the state store, start the Balancer and serve its apps until ``shutdown``."""
    from paddler.balancer import Balancer, StateStoreError, open_state_store
    from paddler.metrics import BalancerMetrics
    from paddler_server.serve import serve_apps

    try:
        state_store = open_state_store(options.state_database)
    except StateStoreError as exc:
        raise click.ClickException(str(exc)) from exc
    metrics = BalancerMetrics(prefix=options.statsd_prefix)
    config = balancer_config(options, **(config_extra or {}))
    async with Balancer(config, state_store=state_store, metrics=metrics) as balancer:
        apps = build_apps(balancer, options, metrics=metrics, shutdown=shutdown)
        server_shutdown = anyio.Event()
        async with anyio.create_task_group() as tg:
            if options.statsd_addr is not None:
                tg.start_soon(_run_statsd, balancer, options)
            async with anyio.create_task_group() as servers:
                await servers.start(
                    lambda task_status: serve_apps(
                        apps,
                        shutdown=server_shutdown,
                        ws_max_size=options.limits.max_frame_bytes,
                        task_status=task_status,
                    )
                )
                if on_ready is not None:
                    await on_ready(balancer)
                await shutdown.wait()
                # The apps answer every open request (503, an SSE error event) and close
                # sockets (1001); the servers stop once those requests are gone.
                await _wait_requests_done(balancer, DRAIN_SECONDS)
                server_shutdown.set()
            tg.cancel_scope.cancel()  # servers are done: stop the StatsD reporter too


async def _wait_requests_done(balancer: Any, deadline: float) -> None:
    """Until no request is buffered or streaming (each has sent its last envelope), or
    ``deadline`` seconds."""
    with anyio.move_on_after(deadline):
        while True:
            stats = balancer.statistics()
            if stats.requests_active == 0 and stats.requests_buffered == 0:
                break
            await anyio.sleep(0.02)
    await anyio.sleep(0.05)  # the last envelopes' writes, right after their requests ended


async def _run_statsd(balancer: Any, options: BalancerOptions) -> None:
    from paddler.metrics import StatsdReporter

    assert options.statsd_addr is not None
    reporter = StatsdReporter(
        host=options.statsd_addr.host,
        port=options.statsd_addr.port,
        prefix=options.statsd_prefix,
        interval=options.statsd_reporting_interval_ms / 1000,
    )
    await reporter.run(balancer.statistics)


async def run_balancer(options: BalancerOptions, shutdown: anyio.Event) -> None:
    await serve_balancer(options, shutdown)


async def run_agent(options: AgentOptions, shutdown: anyio.Event) -> None:
    """Run an Agent dialing the balancer until ``shutdown`` (then it deregisters)."""
    from paddler.agent import Agent, AgentConfig

    url = f"ws://{options.management_addr.original}"
    config = AgentConfig(
        management_url=url,
        slots=options.slots,
        name=options.name,
        extra_buffer_types=options.extra_buffer_types,
        threads=options.threads,
        engine_stall_timeout=options.engine_stall_timeout,
        drain_timeout=options.drain_timeout,
    )
    async with Agent(config):
        logger.info("agent started management=%s slots=%d", url, options.slots)
        await shutdown.wait()
