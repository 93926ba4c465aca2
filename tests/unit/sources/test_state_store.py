"""State stores: memory and Paddler's JSON file, atomic writes, clear errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import paddler.balancer._state_store as state_store_module
from paddler.balancer._state_store import (
    FileStateStore,
    MemoryStateStore,
    StateStoreError,
    open_state_store,
)
from paddler.wire import (
    BalancerDesiredState,
    ChatTemplate,
    HuggingFaceModel,
    InferenceParameters,
    LocalToAgentModel,
    UrlModel,
    converter,
)

pytestmark = pytest.mark.anyio


def custom_state() -> BalancerDesiredState:
    return BalancerDesiredState(
        chat_template_override=ChatTemplate(content="{% for m in messages %}{{ m }}{% endfor %}"),
        use_chat_template_override=True,
        model=UrlModel(url="https://models.example/tiny.gguf"),
        multimodal_projection=HuggingFaceModel(
            repo_id="org/repo", revision="main", filename="mmproj.gguf"
        ),
        inference_parameters=InferenceParameters.deterministic(),
    )


async def test_memory_store_starts_from_the_default_state():
    """memory:// starts with no model and keeps what is stored."""
    store = open_state_store("memory://")
    assert isinstance(store, MemoryStateStore)
    assert await store.load() == BalancerDesiredState.default()

    await store.store(custom_state())

    assert await store.load() == custom_state()


async def test_missing_file_is_created_with_the_default_state(tmp_path):
    """A missing file is created on first load, in Paddler's format."""
    path = tmp_path / "state.json"
    store = open_state_store(f"file://{path}")

    assert await store.load() == BalancerDesiredState.default()

    document = json.loads(path.read_text())
    assert document["version"] == "1"
    assert document["balancer_desired_state"]["model"] == "None"
    assert path.read_text().startswith('{\n  "balancer_desired_state"')  # pretty-printed


async def test_empty_file_is_treated_as_missing(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("\n")

    assert await open_state_store(f"file://{path}").load() == BalancerDesiredState.default()
    assert json.loads(path.read_text())["version"] == "1"


async def test_file_store_survives_reopening(tmp_path):
    """What one store writes, a new store on the same file (a restarted balancer) reads back."""
    url = f"file://{tmp_path / 'state.json'}"
    await open_state_store(url).store(custom_state())

    assert await open_state_store(url).load() == custom_state()


async def test_file_holds_the_wire_json_of_the_state(tmp_path):
    """The document is {"balancer_desired_state": <wire JSON>, "version": "1"}."""
    path = tmp_path / "state.json"
    state = custom_state().__class__(model=LocalToAgentModel(path="/models/a.gguf"))
    await FileStateStore(path).store(state)

    document = json.loads(path.read_text())

    assert document == {
        "balancer_desired_state": json.loads(converter.dumps(state)),
        "version": "1",
    }
    assert document["balancer_desired_state"]["model"] == {"LocalToAgent": "/models/a.gguf"}


async def test_missing_version_defaults_to_1(tmp_path):
    path = tmp_path / "state.json"
    wire = json.loads(converter.dumps(custom_state()))
    path.write_text(json.dumps({"balancer_desired_state": wire}))

    assert await open_state_store(f"file://{path}").load() == custom_state()


@pytest.mark.parametrize("version", ["2", "4.1.0", "", "anything"])
async def test_any_version_string_is_read(tmp_path, version):
    """As Paddler: the version is an opaque string; the document reads the same."""
    path = tmp_path / "state.json"
    wire = json.loads(converter.dumps(custom_state()))
    path.write_text(json.dumps({"balancer_desired_state": wire, "version": version}))

    assert await open_state_store(f"file://{path}").load() == custom_state()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not JSON"),
        ("[]", "expected a JSON object"),
        ('{"balancer_desired_state": {}, "version": "1", "extra": 1}', "unknown keys extra"),
        ('{"version": "1"}', "balancer_desired_state is missing"),
        ('{"balancer_desired_state": {}, "version": 2}', "version must be a string, got 2"),
        ('{"balancer_desired_state": {"model": "None"}, "version": "1"}', "balancer_desired_state"),
    ],
)
def test_corrupt_file_stops_startup_naming_file_and_problem(tmp_path, content, problem):
    """open_state_store reads the file at once; the error names the file and what is wrong."""
    path = tmp_path / "state.json"
    path.write_text(content)

    with pytest.raises(StateStoreError) as caught:
        open_state_store(f"file://{path}")

    message = str(caught.value)
    assert str(path) in message
    assert "incompatible or invalid database" in message
    assert problem in message


def test_unreadable_file_is_reported(tmp_path):
    """A directory where the file should be cannot be read; the message says so."""
    path = tmp_path / "state.json"
    path.mkdir()

    with pytest.raises(StateStoreError, match=f"cannot read state file {path}"):
        open_state_store(f"file://{path}")


def test_missing_directory_is_reported(tmp_path):
    path = tmp_path / "nowhere" / "state.json"

    with pytest.raises(StateStoreError, match="does not exist"):
        open_state_store(f"file://{path}")


@pytest.mark.parametrize("url", ["file://state.json", "file:state.json", "file://./state.json"])
def test_relative_path_is_rejected_with_the_absolute_form(url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    with pytest.raises(StateStoreError) as caught:
        open_state_store(url)

    assert f"use file://{tmp_path / 'state.json'}" in str(caught.value)


@pytest.mark.parametrize("url", ["memory", "postgres://db/state", "memory://x", "/abs/state.json"])
def test_other_urls_are_rejected(url):
    with pytest.raises(StateStoreError, match="memory://"):
        open_state_store(url)


async def test_crash_before_rename_leaves_the_old_file(tmp_path, monkeypatch):
    """A write that dies between writing the temporary file and renaming it changes nothing."""
    path = tmp_path / "state.json"
    store = FileStateStore(path)
    await store.store(BalancerDesiredState.default())
    before = path.read_bytes()

    def crash(source: str, target: Path) -> None:
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(state_store_module, "_replace", crash)
    with pytest.raises(StateStoreError, match="simulated crash"):
        await store.store(custom_state())

    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["state.json"]  # the temporary file is gone too
    assert await FileStateStore(path).load() == BalancerDesiredState.default()


async def test_concurrent_stores_leave_one_whole_document(tmp_path):
    """Stores are serialized: the file always parses and holds one of the states."""
    import anyio

    path = tmp_path / "state.json"
    store = FileStateStore(path)
    states = [
        BalancerDesiredState(model=LocalToAgentModel(path=f"/models/{i}.gguf")) for i in range(8)
    ]
    async with anyio.create_task_group() as tg:
        for state in states:
            tg.start_soon(store.store, state)

    assert await FileStateStore(path).load() in states
