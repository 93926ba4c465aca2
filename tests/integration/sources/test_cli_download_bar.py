"""The CLI's download bar: drawn from a real agent's status while a real download runs; the
library itself writes nothing to stderr."""

from __future__ import annotations

import io
import sys
import threading
from pathlib import Path

import anyio
import pytest
from rich.console import Console

from paddler.agent import Agent, AgentConfig, Engine, EngineSpec
from paddler.balancer import Balancer, BalancerConfig
from paddler.wire import BalancerDesiredState, InferenceParameters, UrlModel
from paddler_server._progress import DownloadBar, show_download_progress

from ._fileserver import FileServer, Route

pytestmark = pytest.mark.anyio


def terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=120), out


async def no_engine(spec: EngineSpec) -> Engine:
    raise RuntimeError("no engine in this test: only the download matters")


async def test_the_bar_follows_a_real_download_of_the_agent(
    file_server: FileServer, cache_dir: Path, model_bytes: bytes
) -> None:
    hold = threading.Event()
    url = file_server.add("/bar.gguf", Route(body=model_bytes, stall_after=300_000, hold=hold))
    name = f"cli-bar-{id(cache_dir)}"
    console, out = terminal()
    state = BalancerDesiredState(model=UrlModel(url), inference_parameters=InferenceParameters())
    try:
        async with Balancer(BalancerConfig(inproc_name=name)) as balancer:
            await balancer.set_desired_state(state)
            config = AgentConfig(management_url=f"inproc://{name}", slots=1, cache_dir=cache_dir)
            agent = Agent(config, engine_loader=no_engine)
            async with agent, anyio.create_task_group() as tg:
                tg.start_soon(show_download_progress, agent, console)
                with anyio.fail_after(20):
                    async for status in agent.subscribe_status():
                        if status.download_current > 0:  # the first 256 KiB are in
                            break
                await anyio.wait_all_tasks_blocked()  # the bar has drawn them too
                tg.cancel_scope.cancel()
    finally:
        hold.set()
    drawn = out.getvalue()
    assert "bar.gguf" in drawn
    assert "0.3/1.0 MB" in drawn  # 262,144 of 1,048,576 bytes


def test_each_file_gets_its_own_bar_and_a_finished_download_ends_it() -> None:
    from paddler.wire import SlotAggregatedStatusSnapshot

    console, out = terminal()
    bar = DownloadBar(console)
    base = Agent(AgentConfig(management_url="inproc://unused", slots=1)).status.snapshot()

    def at(filename: str | None, current: int, total: int) -> SlotAggregatedStatusSnapshot:
        import attrs

        return attrs.evolve(
            base,
            download_filename=filename,
            download_current=current,
            download_total=total,
            download_indeterminate=False,
        )

    bar.show(at("model.gguf", 500_000, 2_000_000))
    bar.show(at("model.gguf", 2_000_000, 2_000_000))
    bar.show(at("mmproj.gguf", 1_000, 4_000))
    bar.show(at(None, 0, 0))
    drawn = out.getvalue()
    assert "2.0/2.0 MB" in drawn and "model.gguf" in drawn
    assert "mmproj.gguf" in drawn
    bar.show(at(None, 0, 0))  # nothing more to end
    assert out.getvalue() == drawn


async def test_the_library_draws_nothing_even_on_a_terminal(
    file_server: FileServer,
    cache_dir: Path,
    model_bytes: bytes,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A download made through the library alone (no CLI) leaves stderr empty."""
    from paddler.agent import resolve_model

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    url = file_server.add("/quiet.gguf", Route(body=model_bytes))
    path = await resolve_model(UrlModel(url=url), on_progress=lambda _: None, cache_dir=cache_dir)
    assert path is not None and path.read_bytes() == model_bytes
    assert capfd.readouterr().err == ""
