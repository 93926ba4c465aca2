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
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import click

from paddler_server._limits import ConnectionLimit
from paddler_server._logging import reapply_logging

if TYPE_CHECKING:  # the agent command imports this module too: no balancer, no uvicorn
    import pluggy

    from paddler.agent import AgentConfig
    from paddler.balancer import Balancer, StateStore
    from paddler.metrics import BalancerMetrics
    from paddler.transports import AgentTransport
    from paddler_server._api_keys import ApiKeyStore
    from paddler_server._key_guard import ErrorStyle
    from paddler_server._options import Address
    from paddler_server._settings import BalancerSettings
    from paddler_server.serve import AppAddress

__all__ = [
    "build_apps",
    "open_settings_state_store",
    "run_agent",
    "run_balancer",
    "run_until_signal",
    "serve_balancer",
]

logger = logging.getLogger("paddler_server.cli")

#: Seconds between the first signal and the process exiting, whatever is still running.
EXIT_DEADLINE = 4.5
#: Longest wait for open requests to send their last envelopes before the servers stop.
DRAIN_SECONDS = 3.0

T = TypeVar("T")


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


def build_apps(
    balancer: Balancer,
    settings: BalancerSettings,
    *,
    metrics: BalancerMetrics,
    shutdown: anyio.Event,
    api_keys: ApiKeyStore | None = None,
) -> list[AppAddress]:
    """Every app the settings ask for, as ``(app, host, port)`` for ``serve_apps``.

    :param api_keys: the keys the inference and OpenAI services ask for (``None``: open).
    """
    from paddler_server.inference import create_inference_app
    from paddler_server.management import create_management_app

    def keyed(app: Any, style: ErrorStyle) -> Any:
        if api_keys is None:
            return app
        from paddler_server._key_guard import ApiKeyGuard

        origins = settings.inference_origins
        return ApiKeyGuard(app, api_keys, style=style, balancer=balancer, cors_origins=origins)

    max_connections = settings.limits.max_connections
    inference = settings.inference_addr
    management = settings.management_addr
    apps: list[AppAddress] = [
        (
            ConnectionLimit(
                keyed(create_inference_app(balancer, settings, shutdown=shutdown), "paddler"),
                max_connections,
                service="inference",
            ),
            inference.host,
            inference.port,
        ),
        (
            ConnectionLimit(
                create_management_app(balancer, settings, metrics=metrics, shutdown=shutdown),
                max_connections,
                service="management",
            ),
            management.host,
            management.port,
        ),
    ]
    if settings.compat_openai_addr is not None:
        from paddler_server._recovery_header import RecoveryOptOut
        from paddler_server.openai import create_openai_app

        openai_app = keyed(
            RecoveryOptOut(create_openai_app(balancer, settings, shutdown=shutdown)), "openai"
        )
        limited = ConnectionLimit(openai_app, max_connections, service="OpenAI")
        apps.append((limited, settings.compat_openai_addr.host, settings.compat_openai_addr.port))
    if settings.web_admin_panel_addr is not None:
        from paddler_server.admin_panel import create_admin_panel_app

        panel = settings.web_admin_panel_addr
        apps.append((create_admin_panel_app(settings), panel.host, panel.port))
    reapply_logging()  # apps built with Litestar's default logging config replace handlers
    return [_host_checked(app, host, port, settings) for app, host, port in apps]


def _host_checked(app: Any, host: str, port: int, settings: BalancerSettings) -> AppAddress:
    """``app`` behind the ``Host`` check of a service bound to ``host`` (DNS rebinding)."""
    from paddler_server._host_check import HostCheck, HostRule

    service = getattr(app, "service", "admin panel")
    return (HostCheck(app, HostRule(host, settings.allowed_hosts), service=service), host, port)


def open_settings_state_store(
    settings: BalancerSettings, plugin_manager: pluggy.PluginManager
) -> StateStore:
    """The store ``--state-database`` names, asked of the plugins; a bad URL is a usage error."""
    from paddler.balancer import StateStoreError, open_state_store

    try:
        return open_state_store(settings.state_database, plugin_manager=plugin_manager)
    except StateStoreError as exc:
        raise click.BadParameter(str(exc), param_hint="--state-database") from exc


def use_settings_policy(settings: BalancerSettings, plugin_manager: pluggy.PluginManager) -> None:
    """Put ``--balancing-policy`` in place; an unknown name is a usage error listing the known."""
    from paddler.policies import UnknownPolicy, use_policy

    try:
        use_policy(plugin_manager, settings.balancing_policy)
    except UnknownPolicy as exc:
        raise click.BadParameter(str(exc), param_hint="--balancing-policy") from exc


async def serve_balancer(
    settings: BalancerSettings,
    shutdown: anyio.Event,
    *,
    on_ready: Callable[[Balancer], Awaitable[None]] | None = None,
) -> None:
    """Open the state store, start the Balancer and serve its apps until ``shutdown``."""
    from paddler.balancer import Balancer
    from paddler.metrics import BalancerMetrics
    from paddler.plugins import get_plugin_manager
    from paddler_server.serve import serve_apps

    plugin_manager = get_plugin_manager()
    use_settings_policy(settings, plugin_manager)
    state_store = open_settings_state_store(settings, plugin_manager)
    metrics = BalancerMetrics(prefix=settings.statsd_prefix)
    async with Balancer(
        settings.balancer,
        state_store=state_store,
        plugin_manager=plugin_manager,
        metrics=metrics,
    ) as balancer:
        api_keys = _api_key_store(settings, metrics)
        apps = build_apps(balancer, settings, metrics=metrics, shutdown=shutdown, api_keys=api_keys)
        server_shutdown = anyio.Event()
        async with anyio.create_task_group() as tg:
            if api_keys is not None:
                from paddler_server._keys_reload import watch_keys

                await tg.start(watch_keys, settings.api_keys, api_keys)
            if settings.statsd_addr is not None:
                tg.start_soon(_run_statsd, balancer, settings.statsd_addr, settings)
            async with anyio.create_task_group() as servers:
                await servers.start(
                    lambda task_status: serve_apps(
                        apps,
                        shutdown=server_shutdown,
                        ws_max_size=settings.limits.max_frame_bytes,
                        tls=settings.tls,
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


def _api_key_store(settings: BalancerSettings, metrics: BalancerMetrics) -> ApiKeyStore | None:
    """The API keys, when any are configured; a bad keys file is a usage error."""
    if not settings.api_keys.configured:
        return None
    from paddler_server._api_keys import ApiKeyStore, KeysFileError

    try:
        return ApiKeyStore(settings.api_keys.load(), metrics=metrics.keys)
    except (KeysFileError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--api-keys-file") from exc


async def _wait_requests_done(balancer: Balancer, deadline: float) -> None:
    """Until no request is buffered or streaming (each has sent its last envelope), or
    ``deadline`` seconds."""
    with anyio.move_on_after(deadline):
        while True:
            stats = balancer.statistics()
            if stats.requests_active == 0 and stats.requests_buffered == 0:
                break
            await anyio.sleep(0.02)
    await anyio.sleep(0.05)  # the last envelopes' writes, right after their requests ended


async def _run_statsd(balancer: Balancer, address: Address, settings: BalancerSettings) -> None:
    from paddler.metrics import StatsdReporter

    reporter = StatsdReporter(
        host=address.host,
        port=address.port,
        prefix=settings.statsd_prefix,
        interval=settings.statsd_reporting_interval_ms / 1000,
    )
    await reporter.run(balancer.statistics)


async def run_balancer(settings: BalancerSettings, shutdown: anyio.Event) -> None:
    await serve_balancer(settings, shutdown)


async def run_agent(
    config: AgentConfig, shutdown: anyio.Event, *, transport: AgentTransport | None = None
) -> None:
    """Run an Agent dialing the balancer until ``shutdown`` (then it deregisters).

    :param transport: how it dials (``paddler agent`` passes a ``WebSocketTransport`` with
        its join token and TLS trust); the URL's default transport when ``None``.
    """
    from paddler.agent import Agent
    from paddler_server._progress import show_download_progress

    async with Agent(config, transport=transport) as agent, anyio.create_task_group() as tg:
        tg.start_soon(show_download_progress, agent)  # a bar on stderr, if it is a terminal
        logger.info("agent started management=%s slots=%d", config.management_url, config.slots)
        await shutdown.wait()
        tg.cancel_scope.cancel()
