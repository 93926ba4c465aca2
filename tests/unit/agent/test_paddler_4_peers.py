"""Our balancer with a Paddler 4.1 agent, and our agent with a Paddler 4.1 balancer.

Paddler's Rust binaries cannot run here, so each test plays the old end itself: a plain
``websockets`` client or server speaking exactly the protocol of the wire spec (§3) and nothing
more. It sends no ``Paddler-Extensions`` header, and it checks every frame as serde's
``deny_unknown_fields`` would: a Rust agent never answers a ``Request`` with a key it does not
know, and a Rust balancer cannot read a status with an issue variant it lacks. What crosses the
socket is all that compatibility depends on, so this is the part of Paddler that matters.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from agent_fakes import FakeEngine, FakeLoader
from openai import AsyncOpenAI
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from paddler.agent import Agent, AgentConfig, EngineSpec
from paddler.agent import _reconciler as reconciler
from paddler.balancer import Balancer, BalancerConfig
from paddler.metrics import BalancerMetrics
from paddler.wire import (
    AgentDesiredState,
    BalancerDesiredState,
    InferenceParameters,
    LocalToAgentModel,
    converter,
)
from paddler_server.management import create_management_app
from paddler_server.openai import create_openai_app
from paddler_server.serve import serve_apps

pytestmark = pytest.mark.anyio

#: Paddler 4.1's ``AgentIssue`` variants (spec §3.2); anything else breaks its status parsing.
PADDLER_ISSUES = {
    "CacheCannotAcquireLock",
    "CacheDirectoryIsNotWritable",
    "CacheStorageIsFull",
    "DownloadInterrupted",
    "DownloadServerDeniedAccess",
    "DownloadServerErrored",
    "DownloadServerIsUnreachable",
    "DownloadServerRejectedRequest",
    "DownloadUrlIsMalformed",
    "ModelCacheIsCorrupted",
    "ModelDoesNotExistAtUrl",
    "HuggingFaceModelDoesNotExist",
    "HuggingFacePermissions",
    "ModelCannotBeLoaded",
    "ModelFileDoesNotExist",
    "MultimodalProjectionCannotBeLoaded",
    "UnableToFindChatTemplate",
    "ChatTemplateDoesNotCompile",
    "HuggingFaceCannotAcquireLock",
    "SlotCannotStart",
}
STATUS_KEYS = {
    "desired_slots_total",
    "slots_total",
    "slots_processing",
    "download_current",
    "download_total",
    "download_indeterminate",
    "download_filename",
    "issues",
    "model_path",
    "state_application_status",
    "uses_chat_template_override",
    "version",
}
USAGE = {
    "prompt_tokens": 3,
    "cached_prompt_tokens": 0,
    "input_image_tokens": 0,
    "input_audio_tokens": 0,
    "content_tokens": 1,
    "reasoning_tokens": 0,
    "tool_call_tokens": 0,
    "undeterminable_tokens": 0,
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def paddler_status(slots_total: int, version: int) -> dict[str, Any]:
    return {
        "desired_slots_total": 1,
        "slots_total": slots_total,
        "slots_processing": 0,
        "download_current": 0,
        "download_total": 0,
        "download_indeterminate": True,
        "download_filename": None,
        "issues": [],
        "model_path": "/models/m.gguf" if slots_total else None,
        "state_application_status": "Applied",
        "uses_chat_template_override": False,
        "version": version,
    }


class PaddlerAgent:
    """A Rust agent as the spec describes it: registers, answers each request with one token."""

    def __init__(self) -> None:
        self.handshake_extensions: str | None = "unset"
        self.requests: list[dict[str, Any]] = []
        self.rejected: list[str] = []
        self.versions = 0
        self.socket: Any = None

    async def send(self, message: dict[str, Any]) -> None:
        await self.socket.send(json.dumps(message))

    async def status(self, slots_total: int, version: int) -> None:
        await self.send(
            {
                "Notification": {
                    "UpdateAgentStatus": {
                        "slot_aggregated_status_snapshot": paddler_status(slots_total, version)
                    }
                }
            }
        )

    async def run(self, url: str, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        async with connect(f"{url}/api/v1/agent_socket/rust-agent") as socket:
            self.socket = socket
            assert socket.response is not None
            self.handshake_extensions = socket.response.headers.get("Paddler-Extensions")
            await self.send(
                {
                    "Notification": {
                        "RegisterAgent": {
                            "name": "rust",
                            "slot_aggregated_status_snapshot": paddler_status(1, 1),
                        }
                    }
                }
            )
            task_status.started()
            async for frame in socket:
                message = json.loads(frame)
                if message == {"Notification": {"Version": {"version": "4.1.0"}}}:
                    self.versions += 1
                elif "Request" in message:
                    request = message["Request"]
                    if set(request) != {"id", "request"}:  # serde: unknown field -> no answer
                        self.rejected.append(str(frame))
                        continue
                    self.requests.append(request)
                    for response in ({"ContentToken": "Hi"}, {"Done": {"usage": USAGE}}):
                        await self.send(
                            {
                                "Response": {
                                    "generated_by": "rust",
                                    "request_id": request["id"],
                                    "response": {"GeneratedToken": response},
                                }
                            }
                        )


async def wait_slots_total(balancer: Balancer, total: int) -> None:
    async for _ in balancer.subscribe_agents():
        if balancer.pool.slots_total == total:
            return


async def test_a_paddler_agent_serves_openai_requests_that_set_sampling_fields() -> None:
    """The request reaches it without ``sampling_overrides`` (the cluster's sampling is used,
    as with Paddler's own OpenAI layer) instead of being ignored into a 504; and the agent's
    drain gets no acknowledgement it does not expect."""
    config = BalancerConfig(inference_item_timeout=5.0, buffered_request_timeout=5.0)
    async with Balancer(config) as balancer, anyio.create_task_group() as tg:
        apps = [
            (create_management_app(balancer, metrics=BalancerMetrics()), "127.0.0.1", 0),
            (create_openai_app(balancer), "127.0.0.1", 0),
        ]
        (management, openai_addr) = await tg.start(serve_apps, apps)
        await balancer.set_desired_state(
            BalancerDesiredState(
                model=LocalToAgentModel("/models/m.gguf"),
                inference_parameters=InferenceParameters(),
            )
        )
        agent = PaddlerAgent()
        with anyio.fail_after(20):
            await tg.start(agent.run, f"ws://{management[0]}:{management[1]}")
            await balancer.wait_agents(1)
            sdk = AsyncOpenAI(
                base_url=f"http://{openai_addr[0]}:{openai_addr[1]}/v1", api_key="x", max_retries=0
            )
            ask = {"model": "m", "messages": [{"role": "user", "content": "Hi"}]}
            answer = await sdk.chat.completions.create(
                **ask, temperature=0.3, top_p=0.9, seed=7, stop=["zz"], presence_penalty=0.5
            )
            assert answer.choices[0].message.content == "Hi"

            # A drain (slots_total 0) and back: a Paddler agent gets no acknowledgement.
            await agent.status(0, 2)
            await wait_slots_total(balancer, 0)
            await agent.status(1, 3)
            await wait_slots_total(balancer, 1)
            again = await sdk.chat.completions.create(**ask, temperature=1.5)
            assert again.choices[0].message.content == "Hi"
            await sdk.close()
        tg.cancel_scope.cancel()

    assert agent.handshake_extensions is None  # nothing was announced to it
    assert agent.rejected == []
    assert len(agent.requests) == 2
    assert agent.versions == 1  # the handshake's only


class PaddlerBalancer:
    """A Rust balancer as the spec describes it: Version, SetState, never a drain ack."""

    def __init__(self, first: AgentDesiredState, second: AgentDesiredState, paths: Any) -> None:
        self.states = [first, second]
        self.paths = [str(path) for path in paths]
        self.statuses: list[dict[str, Any]] = []
        self.announced: str | None = None
        self.swapped = anyio.Event()

    async def set_state(self, socket: ServerConnection, state: AgentDesiredState) -> None:
        wire = json.loads(converter.dumps(state))
        await socket.send(json.dumps({"Notification": {"SetState": {"desired_state": wire}}}))

    def read_status(self, message: dict[str, Any]) -> dict[str, Any]:
        (kind,) = message["Notification"]
        status: dict[str, Any] = message["Notification"][kind]["slot_aggregated_status_snapshot"]
        assert set(status) == STATUS_KEYS, status
        for issue in status["issues"]:
            name = issue if isinstance(issue, str) else next(iter(issue))
            assert name in PADDLER_ISSUES, f"a Rust balancer cannot read the issue {issue}"
        self.statuses.append(status)
        return status

    async def handler(self, socket: ServerConnection) -> None:
        assert socket.request is not None
        self.announced = socket.request.headers.get("Paddler-Extensions")
        await socket.send(json.dumps({"Notification": {"Version": {"version": "4.1.0"}}}))
        self.read_status(json.loads(await socket.recv()))
        await self.set_state(socket, self.states[0])
        async for frame in socket:
            status = self.read_status(json.loads(frame))
            applied = status["state_application_status"] == "Applied" and status["slots_total"]
            if applied and status["model_path"] == self.paths[0]:
                await self.set_state(socket, self.states[1])  # a swap: the agent drains
            elif applied and status["model_path"] == self.paths[1]:
                self.swapped.set()

    async def serve(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        async with serve(self.handler, "127.0.0.1", 0) as server:
            task_status.started(next(iter(server.sockets)).getsockname()[1])
            await anyio.sleep_forever()


class CrashedKernelsLoader(FakeLoader):
    """Engines that report an issue of ours (the AMX fallback), to see it is kept local."""

    async def __call__(self, spec: EngineSpec) -> FakeEngine:
        engine = await super().__call__(spec)
        engine.extra_buffer_types_fault = "AMX kernels crashed"
        return engine


async def test_our_agent_swaps_under_a_paddler_balancer_without_waiting_for_an_ack(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No drain acknowledgement is awaited from a balancer that never sends one (the wait is
    made an hour long, so waiting at all would fail the test), and its statuses carry only
    Paddler's issue variants and fields."""
    monkeypatch.setattr(reconciler, "DRAIN_ACK_TIMEOUT", 3600.0)
    paths = [tmp_path / "one.gguf", tmp_path / "two.gguf"]
    for path in paths:
        path.write_bytes(b"GGUF")
    first, second = (
        AgentDesiredState(
            chat_template_override=None,
            inference_parameters=InferenceParameters(),
            model=LocalToAgentModel(str(path)),
            multimodal_projection=BalancerDesiredState.default().multimodal_projection,
        )
        for path in paths
    )
    rust = PaddlerBalancer(first, second, paths)
    async with anyio.create_task_group() as tg:
        port = await tg.start(rust.serve)
        config = AgentConfig(management_url=f"ws://127.0.0.1:{port}", slots=1, name="ours")
        loader = CrashedKernelsLoader()
        async with Agent(config, engine_loader=loader) as agent:
            with anyio.fail_after(20):
                await rust.swapped.wait()
            local_issues = {type(issue).__name__ for issue in agent.status.issues}
        tg.cancel_scope.cancel()

    assert [engine.path for engine in loader.engines] == paths
    assert "ExtraBufferTypesDisabled" in local_issues  # ours, shown by our own balancer only
    assert rust.announced is not None and "drain_ack" in rust.announced  # ignored by Rust
    assert any(status["slots_total"] == 0 for status in rust.statuses)  # it did drain
