"""A real agent given URLs that fail in every way reports issues and stays connected.

Before, ``httpx.TooManyRedirects`` escaped the reconciler and ended ``paddler agent``; the
balancer then sent the same state again after a restart, so it crashed again.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import anyio
import attrs
import pytest

from paddler.agent import Agent, AgentConfig
from paddler.agent._download import MAX_DOWNLOAD_SIZE_ENV
from paddler.balancer import Balancer, BalancerConfig
from paddler.wire import (
    AgentControllerPoolSnapshot,
    AgentIssue,
    BalancerDesiredState,
    CacheStorageIsFull,
    ContinueFromRawPromptParams,
    Done,
    DownloadServerErrored,
    DownloadServerIsUnreachable,
    InferenceParameters,
    LocalToAgentModel,
    ResponseEnvelope,
    UrlModel,
)

from ._fileserver import FileServer, Route

pytestmark = [pytest.mark.anyio, pytest.mark.model]

PARAMETERS = attrs.evolve(InferenceParameters.deterministic(), context_size=512, n_batch=128)


def state(model: UrlModel | LocalToAgentModel) -> BalancerDesiredState:
    return BalancerDesiredState(model=model, inference_parameters=PARAMETERS)


async def issue_shows(balancer: Balancer, wanted: Callable[[AgentIssue], bool]) -> AgentIssue:
    """The first reported issue that ``wanted`` accepts, from the live agents stream."""
    with anyio.fail_after(30):
        async for snapshot in balancer.subscribe_agents():
            found = _find(snapshot, wanted)
            if found is not None:
                return found
    raise AssertionError("unreachable")


def _find(
    snapshot: AgentControllerPoolSnapshot, wanted: Callable[[AgentIssue], bool]
) -> AgentIssue | None:
    for agent in snapshot.agents:
        for issue in agent.issues:
            if wanted(issue):
                return issue
    return None


async def test_failing_downloads_are_issues_and_the_agent_recovers(
    file_server: FileServer, tmp_path: Path, model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MAX_DOWNLOAD_SIZE_ENV, "64KiB")
    loop = file_server.add("/loop.gguf", Route(status=302, headers={"Location": "/loop.gguf"}))
    garbled = file_server.add(
        "/gz.gguf",
        Route(body=random.Random(1).randbytes(2048), headers={"Content-Encoding": "gzip"}),
    )
    reset = file_server.add("/reset.gguf", Route(reset=True))
    big = file_server.add("/big.gguf", Route(body=bytes(1024 * 1024)))
    name = f"download-issues-{id(tmp_path)}"
    async with Balancer(BalancerConfig(inproc_name=name)) as balancer:
        await balancer.set_desired_state(state(UrlModel(loop)))
        config = AgentConfig(
            management_url=f"inproc://{name}", slots=1, name="a", cache_dir=tmp_path / "cache"
        )
        async with Agent(config):
            for url, kind in (
                (loop, DownloadServerErrored),
                (garbled, DownloadServerErrored),
                (reset, DownloadServerIsUnreachable),
                (big, CacheStorageIsFull),
            ):
                await balancer.set_desired_state(state(UrlModel(url)))
                issue = await issue_shows(
                    balancer,
                    lambda i, url=url, kind=kind: (
                        isinstance(i, kind) and getattr(i, "model_path", None) == url
                    ),
                )
                assert isinstance(issue, kind)
            assert len(balancer.agents_snapshot().agents) == 1  # the same agent, still here
            await balancer.set_desired_state(state(LocalToAgentModel(str(model_path))))
            with anyio.fail_after(60):
                await balancer.wait_agents(1)
            params = ContinueFromRawPromptParams(raw_prompt="Hello", max_tokens=4)
            async with balancer.generate(params) as stream:
                items = [item async for item in stream]
            last = items[-1]
            assert isinstance(last, ResponseEnvelope) and isinstance(last.response, Done)
