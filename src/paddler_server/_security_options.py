"""The access-control flags of ``paddler balancer``, ``paddler agent`` and ``set-state``.

Secrets are also read from the environment (``ps`` shows every process's flags to the other
users of a machine): ``PADDLER_MANAGEMENT_API_KEY``, ``PADDLER_AGENT_TOKENS``
(comma-separated) and ``PADDLER_AGENT_TOKEN``. ``docs/security.md`` says what each one closes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from paddler_server._host_check import is_loopback_host, parse_allowed_hosts
from paddler_server._tls import TlsFiles, agent_management_url

if TYPE_CHECKING:
    from paddler_server._settings import BalancerSettings

__all__ = [
    "AGENT_MANAGEMENT_URL",
    "MANAGEMENT_API_KEY",
    "agent_security_options",
    "balancer_security_options",
    "balancer_security_settings",
    "management_client_url",
    "split_tokens",
    "warn_open_services",
]

logger = logging.getLogger("paddler_server.security")

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _compose(*decorators: Decorator) -> Decorator:
    def apply(function: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


MANAGEMENT_API_KEY = click.option(
    "--management-api-key",
    default=None,
    metavar="KEY",
    envvar="PADDLER_MANAGEMENT_API_KEY",
    help="Key the management API and the admin panel ask for (Authorization: Bearer KEY); "
    "/health stays open. Off unless given. Also read from PADDLER_MANAGEMENT_API_KEY.",
)

balancer_security_options = _compose(
    MANAGEMENT_API_KEY,
    click.option(
        "--agent-token",
        "agent_tokens",
        multiple=True,
        metavar="TOKEN",
        envvar="PADDLER_AGENT_TOKENS",
        help="Token an agent must present to join (paddler agent --token). Repeatable: give "
        "each machine its own, and an agent id stays with the token it first joined with. "
        "Off unless given. Also read from PADDLER_AGENT_TOKENS (comma-separated).",
    ),
    click.option(
        "--tls-cert",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="PEM certificate (chain): every service speaks https/wss. Needs --tls-key.",
    ),
    click.option(
        "--tls-key",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="PEM private key of --tls-cert.",
    ),
    click.option(
        "--allowed-hosts",
        multiple=True,
        metavar="HOST[,HOST...]",
        help="Host header names answered besides loopback ones: exact names or addresses, "
        "*.example.com, or * for any. A service on loopback answers only loopback names "
        "without it (DNS rebinding); one on another address checks only when it is given. "
        "Repeatable.",
    ),
)


def split_tokens(values: Iterable[str]) -> tuple[str, ...]:
    """Tokens from repeated flags or a comma-separated environment variable."""
    tokens = (token.strip() for value in values for token in value.split(","))
    return tuple(dict.fromkeys(token for token in tokens if token))


def balancer_security_settings(
    *,
    management_api_key: str | None,
    agent_tokens: tuple[str, ...],
    tls_cert: Path | None,
    tls_key: Path | None,
    allowed_hosts: tuple[str, ...],
) -> dict[str, Any]:
    """The ``BalancerSettings`` fields of these flags; a bad value is a usage error."""
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together; give both or neither")
    tls = None
    if tls_cert is not None and tls_key is not None:
        try:
            tls = TlsFiles.load(tls_cert, tls_key)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--tls-cert/--tls-key") from exc
    try:
        hosts = parse_allowed_hosts(allowed_hosts)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--allowed-hosts") from exc
    if management_api_key is not None and not management_api_key.strip():
        raise click.BadParameter("must not be empty", param_hint="--management-api-key")
    tokens = split_tokens(agent_tokens)
    if agent_tokens and not tokens:  # an empty value must not leave the agent socket open
        raise click.BadParameter(
            "must not be empty", param_hint="--agent-token / PADDLER_AGENT_TOKENS"
        )
    return {
        "management_api_key": management_api_key.strip() if management_api_key else None,
        "agent_tokens": tokens,
        "tls": tls,
        "allowed_hosts": hosts,
    }


class AgentManagementUrl(click.ParamType):  # type: ignore[type-arg]
    """``host:port``, ``ws(s)://host:port`` or ``http(s)://host:port``, as a ws/wss URL."""

    name = "[SCHEME://]HOST:PORT"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> str:
        try:
            return agent_management_url(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


AGENT_MANAGEMENT_URL = AgentManagementUrl()

agent_security_options = _compose(
    click.option(
        "--token",
        default=None,
        metavar="TOKEN",
        envvar="PADDLER_AGENT_TOKEN",
        help="The balancer's join token (its --agent-token), sent on the agent socket's "
        "handshake. Also read from PADDLER_AGENT_TOKEN.",
    ),
    click.option(
        "--tls-ca",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        default=None,
        help="PEM CA certificate to check a wss:// balancer against, instead of the system's "
        "CAs (a private CA).",
    ),
)


def management_client_url(text: str) -> str:
    """``host:port`` or ``http(s)://host:port`` as the management base URL clients use."""
    value = text.strip().rstrip("/")
    if "://" not in value:
        return f"http://{value}"
    scheme = value.partition("://")[0].lower()
    if scheme not in ("http", "https"):
        raise click.BadParameter(
            f"{text!r}: the scheme must be http or https", param_hint="--management-addr"
        )
    return value


def warn_open_services(settings: BalancerSettings) -> list[str]:
    """Warn (and return the warnings) about what a management service other machines can
    reach leaves open: the desired state without a management key, joining without a token."""
    management = settings.management_addr
    if is_loopback_host(management.host):
        return []
    warnings = []
    if settings.management_api_key is None:
        warnings.append(
            f"the management service on {management} has no --management-api-key: anyone who "
            "reaches it can change the model every agent downloads"
        )
    if not settings.agent_tokens:
        warnings.append(
            f"the management service on {management} has no --agent-token: anyone who reaches "
            "it can join as an agent and receive prompts"
        )
    for warning in warnings:
        logger.warning("%s (docs/security.md)", warning)
    return warnings
