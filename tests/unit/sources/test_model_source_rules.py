"""Local and no-model sources, the cache directory rules, and which outcomes clear issues."""

from __future__ import annotations

import hashlib

import pytest

from paddler.agent._cache_dir import default_cache_dir, url_cache_paths
from paddler.agent._sources import (
    ModelLoaded,
    ModelLoadFailed,
    ModelSourceError,
    SourceFailed,
    SourceResolved,
    issues_after,
    model_source_label,
    resolve_model,
)
from paddler.wire import (
    AgentIssueParams,
    ChatTemplateDoesNotCompile,
    DownloadInterrupted,
    HuggingFaceModel,
    LocalToAgentModel,
    ModelCannotBeLoaded,
    ModelDoesNotExistAtUrl,
    ModelFileDoesNotExist,
    NoModel,
    SlotCannotStart,
    UrlModel,
)


def never(_: object) -> None:
    raise AssertionError("no progress expected")


@pytest.mark.anyio
async def test_no_model_resolves_to_none():
    assert await resolve_model(NoModel(), on_progress=never) is None


@pytest.mark.anyio
async def test_local_file_resolves_to_itself(tmp_path):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")

    assert await resolve_model(LocalToAgentModel(path=str(model)), on_progress=never) == model


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["missing.gguf", "."])
async def test_missing_local_file_is_model_file_does_not_exist(tmp_path, name):
    """A missing path, or a directory, is ModelFileDoesNotExist naming the path."""
    path = str(tmp_path / name)

    with pytest.raises(ModelSourceError) as caught:
        await resolve_model(LocalToAgentModel(path=path), on_progress=never)

    assert caught.value.issue == ModelFileDoesNotExist(model_path=path)
    assert path in str(caught.value)


def test_cache_dir_rules(monkeypatch, tmp_path):
    """$PADDLER_CACHE_DIR, else $XDG_CACHE_HOME/paddler, else ~/.cache/paddler."""
    monkeypatch.setenv("PADDLER_CACHE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "explicit"

    monkeypatch.delenv("PADDLER_CACHE_DIR")
    assert default_cache_dir() == tmp_path / "xdg" / "paddler"

    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "paddler"


def test_url_cache_paths_are_named_by_the_sha256_of_the_url(tmp_path):
    paths = url_cache_paths("https://host/model.gguf", tmp_path)
    digest = hashlib.sha256(b"https://host/model.gguf").hexdigest()
    assert paths.final == tmp_path / "downloaded-models" / digest
    assert paths.partial == tmp_path / "downloaded-models" / f"{digest}.partial"
    assert paths.lock == tmp_path / "downloaded-models" / f"{digest}.lock"


def test_model_source_labels():
    assert model_source_label(NoModel()) is None
    assert model_source_label(LocalToAgentModel(path="/m.gguf")) == "/m.gguf"
    assert model_source_label(UrlModel(url="https://h/m.gguf")) == "https://h/m.gguf"
    hf = HuggingFaceModel(repo_id="org/repo", revision="main", filename="m.gguf")
    assert model_source_label(hf) == "org/repo/m.gguf"


URL = "https://h/m.gguf"
TEMPLATE = ChatTemplateDoesNotCompile(
    error="bad", model_path=AgentIssueParams(model_path="/m.gguf"), template_content="{%"
)


def test_a_new_failure_replaces_the_old_one_for_the_same_model():
    """Retrying the download and getting another error shows only the latest."""
    issues = (DownloadInterrupted(model_path=URL),)

    after = issues_after(issues, SourceFailed(ModelDoesNotExistAtUrl(model_path=URL)))

    assert after == (ModelDoesNotExistAtUrl(model_path=URL),)


def test_repeating_a_failure_does_not_duplicate_it():
    issue = ModelFileDoesNotExist(model_path="/m.gguf")

    assert issues_after((issue,), SourceFailed(issue)) == (issue,)


def test_resolving_clears_source_issues_but_not_load_issues():
    issues = (
        ModelDoesNotExistAtUrl(model_path=URL),
        ModelFileDoesNotExist(model_path="/old.gguf"),
        ModelCannotBeLoaded(model_path="/m.gguf"),
    )

    assert issues_after(issues, SourceResolved(URL)) == (ModelCannotBeLoaded(model_path="/m.gguf"),)


def test_loading_clears_load_issues():
    issues = (
        ModelCannotBeLoaded(model_path="/m.gguf"),
        TEMPLATE,
        SlotCannotStart(error="x", slot_index=1),
    )

    assert issues_after(issues, ModelLoaded()) == ()
    assert issues_after(issues, ModelLoadFailed(TEMPLATE)) == (TEMPLATE,)
