"""Model sources and load failures as a user sees them in ``GET /api/v1/agents`` (spec §3.2,
§5.3): a URL model downloading with progress (resuming after the host drops the connection,
then served from the cache, downloaded once for two agents sharing a cache), a Hugging Face
model, each broken URL / status / cache problem, a broken chat template, a corrupt GGUF and a
missing file, each reported as its issue while the agent keeps running, and cleared once a
good state is PUT.

One balancer and one 1-slot agent ``probe`` with its own ``PADDLER_CACHE_DIR`` (and
``HF_ENDPOINT``/``HF_HOME``) serve the module; a real local HTTP server stands in for the model
host and the Hugging Face file routes. Every test ends by putting the demo model back and
waiting for the agent to be loaded with no issues, so the tests stay independent.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_cluster import Cluster, desired_state, free_port
from state_helpers import (
    Route,
    issue_model_paths,
    issue_names,
    loaded,
    only,
    problems,
    start_agent,
    url_state,
)

pytestmark = [pytest.mark.e2e, pytest.mark.model]

AGENT = "probe"
ISSUE_TIMEOUT = 60.0
LOAD_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("agent-cache")


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, model_path: Path, cache_dir: Path, file_server: Any
) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("issues")
    env = {
        "PADDLER_CACHE_DIR": str(cache_dir),
        "HF_ENDPOINT": file_server.base,  # the local server also plays the Hugging Face hub
        "HF_HOME": str(tmp / "hf-home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_TOKEN": "",
    }
    cluster = Cluster(tmp, model_path)
    try:
        cluster.start_balancer()
        cluster.load_model()
        start_agent(cluster, AGENT, 1, env=env)
        cluster.wait_ready(1)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def model_bytes(model_path: Path) -> bytes:
    return model_path.read_bytes()


def probe(cluster: Cluster, predicate: Any, what: str, timeout: float = ISSUE_TIMEOUT) -> Any:
    """Wait (on the agents SSE stream) until the probe agent's snapshot satisfies ``predicate``."""
    agents = cluster.wait_agents(
        lambda agents: (agent := only(agents, AGENT)) is not None and predicate(agent),
        timeout,
        what,
    )
    return only(agents, AGENT)


def put(cluster: Cluster, state: dict[str, Any]) -> None:
    response = cluster.put_state(state)
    assert response.status_code == 204, response.text


def restore_good_state(cluster: Cluster) -> Any:
    """PUT the demo model; the probe agent loads it and every issue is gone."""
    put(cluster, desired_state(cluster.model_path))
    agent = probe(
        cluster,
        lambda a: loaded(a, str(cluster.model_path)),
        "the good state to clear the issues",
        LOAD_TIMEOUT,
    )
    assert cluster.agents[AGENT].alive
    return agent


def cached_file(cache_dir: Path, url: str) -> Path:
    """Where the documented cache rule puts a URL's file."""
    return cache_dir / "downloaded-models" / hashlib.sha256(url.encode()).hexdigest()


def test_url_model_downloads_with_progress_and_resumes(
    cluster: Cluster, file_server: Any, model_bytes: bytes, cache_dir: Path
) -> None:
    """The host sends 8 MiB and stalls: the agent shows the download's filename, current and
    total bytes; the host then drops the connection, the agent resumes with ``Range`` and loads
    the model from its cache, and later uses the cached file without a request."""
    release = threading.Event()
    url = file_server.add(
        "/models/progress/SmolLM2.gguf",
        Route(body=model_bytes, stall_after=8 * 1024 * 1024, hold=release),
    )
    put(cluster, url_state(url))
    try:
        downloading = probe(
            cluster,
            lambda a: a["download_filename"] == "SmolLM2.gguf" and a["download_current"] > 0,
            "download progress in the agents snapshot",
        )
    finally:
        release.set()
    assert downloading["download_total"] == len(model_bytes)
    assert 0 < downloading["download_current"] <= 8 * 1024 * 1024
    assert downloading["download_indeterminate"] is False
    assert downloading["slots_total"] == 0

    final = cached_file(cache_dir, url)
    agent = probe(
        cluster, lambda a: loaded(a, str(final)), "the downloaded model to load", LOAD_TIMEOUT
    )
    assert agent["slots_total"] == 1
    assert (agent["download_current"], agent["download_filename"]) == (0, None)
    assert final.read_bytes() == model_bytes
    gets = file_server.seen("/models/progress/SmolLM2.gguf")
    assert len(gets) >= 2, gets
    resumed = [g.headers.get("Range") for g in gets[1:]]
    assert any(r is not None and r.startswith("bytes=") and r != "bytes=0-" for r in resumed)

    # Once downloaded, the same URL loads from the cache without asking the host again.
    restore_good_state(cluster)
    put(cluster, url_state(url))
    probe(cluster, lambda a: loaded(a, str(final)), "the cached model to load", LOAD_TIMEOUT)
    assert len(file_server.seen("/models/progress/SmolLM2.gguf")) == len(gets)
    restore_good_state(cluster)


def test_two_agents_on_one_host_share_one_download(
    cluster: Cluster, file_server: Any, model_bytes: bytes, cache_dir: Path
) -> None:
    """A second agent with the same cache directory waits on the file lock (showing the
    partial's growth) instead of downloading too: the host sends the file once, and both
    agents load the same cached file."""
    name = "twin"
    start_agent(cluster, name, 1, env={"PADDLER_CACHE_DIR": str(cache_dir)})
    try:
        cluster.wait_agents(lambda agents: loaded(only(agents, name)), LOAD_TIMEOUT, "the twin")
        release = threading.Event()
        path = "/models/shared/SmolLM2.gguf"
        url = file_server.add(
            path, Route(body=model_bytes, stall_after=4 * 1024 * 1024, hold=release)
        )
        put(cluster, url_state(url))
        try:
            cluster.wait_agents(
                lambda agents: all(
                    (a := only(agents, n)) is not None
                    and a["download_filename"] == "SmolLM2.gguf"
                    and a["download_current"] > 0
                    for n in (AGENT, name)
                ),
                ISSUE_TIMEOUT,
                "both agents to show the download's progress",
            )
            assert len(file_server.seen(path)) == 1
        finally:
            release.set()
        final = str(cached_file(cache_dir, url))
        cluster.wait_agents(
            lambda agents: loaded(only(agents, AGENT), final) and loaded(only(agents, name), final),
            LOAD_TIMEOUT,
            "both agents to load the shared download",
        )
        gets = file_server.seen(path)
        assert len(gets) == 2, [g.headers.get("Range") for g in gets]
        assert "Range" not in gets[0].headers
        resumed = gets[1].headers["Range"]
        assert resumed.startswith("bytes=") and resumed != "bytes=0-", resumed
    finally:
        cluster.agents.pop(name).stop()
    restore_good_state(cluster)


def test_a_new_state_abandons_a_download_in_progress(
    cluster: Cluster, file_server: Any, model_bytes: bytes, cache_dir: Path
) -> None:
    """A download that hangs is abandoned as soon as a new state arrives: the agent loads the
    new model without waiting for the host, and keeps the bytes it got for a later resume."""
    release = threading.Event()
    url = file_server.add(
        "/models/abandoned/SmolLM2.gguf",
        Route(body=model_bytes, stall_after=2 * 1024 * 1024, hold=release),
    )
    try:
        put(cluster, url_state(url))
        probe(
            cluster,
            lambda a: a["download_filename"] == "SmolLM2.gguf" and a["download_current"] > 0,
            "the download to start",
        )
        restore_good_state(cluster)  # while the host still holds the rest of the file
        assert not release.is_set()
    finally:
        release.set()
    partial = cached_file(cache_dir, url).with_suffix(".partial")
    assert 0 < partial.stat().st_size <= 2 * 1024 * 1024


BROKEN_STATUSES = [
    (404, "ModelDoesNotExistAtUrl"),
    (401, "DownloadServerDeniedAccess"),
    (403, "DownloadServerDeniedAccess"),
    (400, "DownloadServerRejectedRequest"),
    (500, "DownloadServerErrored"),
    (503, "DownloadServerErrored"),
]


@pytest.mark.parametrize(("status", "issue"), BROKEN_STATUSES)
def test_http_failure_is_reported_and_cleared(
    cluster: Cluster, file_server: Any, status: int, issue: str
) -> None:
    """The host answers ``status``: the agent reports ``issue`` for that URL, keeps running,
    and a good state clears it."""
    url = file_server.add(f"/models/status-{status}/m.gguf", Route(status=status))
    assert_reported_then_cleared(cluster, url, issue)


def test_unreachable_host_is_reported_and_cleared(cluster: Cluster) -> None:
    url = f"http://127.0.0.1:{free_port()}/models/m.gguf"
    assert_reported_then_cleared(cluster, url, "DownloadServerIsUnreachable")


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/models/m.gguf", "http://", "not a url at all", "file:///etc/passwd"]
)
def test_malformed_url_is_reported_and_cleared(cluster: Cluster, url: str) -> None:
    assert_reported_then_cleared(cluster, url, "DownloadUrlIsMalformed")


def test_stale_partial_answered_416_is_reported_and_cleared(
    cluster: Cluster, file_server: Any, cache_dir: Path
) -> None:
    """A partial longer than the file makes the host answer 416 to the resume:
    ``ModelCacheIsCorrupted``, and the stale partial is removed."""
    url = file_server.add("/models/stale/m.gguf", Route(body=b"GGUF" + bytes(1020)))
    partial = cached_file(cache_dir, url).with_suffix(".partial")
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(bytes(4096))
    assert_reported_then_cleared(cluster, url, "ModelCacheIsCorrupted")


def test_unwritable_cache_directory_is_reported(
    cluster: Cluster, file_server: Any, model_bytes: bytes, tmp_path: Path
) -> None:
    """An agent whose cache directory is blocked (a file stands where it should be) reports
    ``CacheDirectoryIsNotWritable`` and keeps running; the demo model still loads on it.
    (The probe agent, meanwhile, fetches the tiny junk file and fails to load it.)"""
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("in the way")
    url = file_server.add("/models/unwritable/m.gguf", Route(body=b"GGUF" + bytes(60)))
    put(cluster, url_state(url))
    name = "blocked"
    start_agent(cluster, name, 1, env={"PADDLER_CACHE_DIR": str(blocked)})
    try:
        agents = cluster.wait_agents(
            lambda agents: (
                (a := only(agents, name)) is not None
                and "CacheDirectoryIsNotWritable" in issue_names(a)
            ),
            ISSUE_TIMEOUT,
            "CacheDirectoryIsNotWritable",
        )
        agent = only(agents, name)
        assert agent is not None and url in issue_model_paths(agent)
        assert cluster.agents[name].alive
        put(cluster, desired_state(cluster.model_path))
        cluster.wait_agents(
            lambda agents: loaded(only(agents, name), str(cluster.model_path)),
            LOAD_TIMEOUT,
            "the blocked agent to load the local model",
        )
    finally:
        cluster.agents.pop(name).stop()
    restore_good_state(cluster)


HF_REPO = "paddler-tests/SmolLM2-GGUF"


def hugging_face_state(cluster: Cluster, filename: str) -> dict[str, Any]:
    state = desired_state(cluster.model_path)
    state["model"] = {"HuggingFace": {"repo_id": HF_REPO, "revision": "main", "filename": filename}}
    return state


def test_hugging_face_model_downloads_and_loads(
    cluster: Cluster, file_server: Any, model_bytes: bytes, tmp_path: Path
) -> None:
    """A Hugging Face model comes from ``HF_ENDPOINT`` into ``HF_HOME`` and loads."""
    file_server.add_hugging_face_file(HF_REPO, "smol.gguf", model_bytes)
    put(cluster, hugging_face_state(cluster, "smol.gguf"))
    agent = probe(
        cluster,
        lambda a: loaded(a) and a["model_path"] != str(cluster.model_path),
        "the Hugging Face model to load",
        LOAD_TIMEOUT,
    )
    assert "hf-home" in agent["model_path"] and agent["model_path"].endswith("smol.gguf")
    assert Path(agent["model_path"]).read_bytes() == model_bytes
    restore_good_state(cluster)


@pytest.mark.parametrize(
    ("status", "issue"), [(404, "HuggingFaceModelDoesNotExist"), (401, "HuggingFacePermissions")]
)
def test_hugging_face_failure_is_reported_and_cleared(
    cluster: Cluster, file_server: Any, status: int, issue: str
) -> None:
    filename = f"missing-{status}.gguf"
    if status != 404:  # an unknown path is the server's 404
        file_server.add(f"/{HF_REPO}/resolve/main/{filename}", Route(status=status))
    put(cluster, hugging_face_state(cluster, filename))
    agent = probe(cluster, lambda a: issue in issue_names(a), issue)
    assert f"{HF_REPO}/{filename}" in issue_model_paths(agent), agent["issues"]
    assert agent["slots_total"] == 0
    assert cluster.agents[AGENT].alive, cluster.agents[AGENT].log()
    restore_good_state(cluster)


def assert_reported_then_cleared(cluster: Cluster, url: str, issue: str) -> None:
    put(cluster, url_state(url))
    agent = probe(cluster, lambda a: issue in issue_names(a), issue)
    assert url in issue_model_paths(agent), agent["issues"]
    assert agent["slots_total"] == 0
    assert agent["model_path"] is None
    assert cluster.agents[AGENT].alive, cluster.agents[AGENT].log()
    restore_good_state(cluster)


# -- load failures -----------------------------------------------------------------------


def test_corrupt_gguf_gives_model_cannot_be_loaded(cluster: Cluster, tmp_path: Path) -> None:
    """A file of junk named ``.gguf``: ``ModelCannotBeLoaded``, the state is retried
    (AttemptedAndRetrying) until it is Stuck, and a good state brings it back to Applied."""
    junk = tmp_path / "corrupt.gguf"
    junk.write_bytes(b"this is not a gguf file, only junk bytes\n" * 256)
    assert_load_failure_then_recovery(cluster, str(junk), "ModelCannotBeLoaded", stuck=True)


def test_truncated_gguf_gives_model_cannot_be_loaded(
    cluster: Cluster, tmp_path: Path, model_bytes: bytes
) -> None:
    """A real GGUF cut short (valid header, missing tensors) cannot be loaded either."""
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(model_bytes[: len(model_bytes) // 3])
    assert_load_failure_then_recovery(cluster, str(truncated), "ModelCannotBeLoaded")


def test_broken_chat_template_override_is_reported_and_cleared(cluster: Cluster) -> None:
    """An override that does not compile: ``ChatTemplateDoesNotCompile`` with the template's
    text, no slots, and a good state clears it."""
    broken = "{% for message in messages %}{{ message['content'] }"
    state = desired_state(cluster.model_path)
    state["chat_template_override"] = {"content": broken}
    state["use_chat_template_override"] = True
    put(cluster, state)
    agent = probe(
        cluster, lambda a: "ChatTemplateDoesNotCompile" in issue_names(a), "the template issue"
    )
    [found] = [i for i in agent["issues"] if "ChatTemplateDoesNotCompile" in i]
    assert found["ChatTemplateDoesNotCompile"]["template_content"] == broken
    assert agent["slots_total"] == 0
    assert cluster.agents[AGENT].alive
    restore_good_state(cluster)


def test_missing_file_gives_model_file_does_not_exist(cluster: Cluster, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.gguf"
    assert_load_failure_then_recovery(cluster, str(missing), "ModelFileDoesNotExist")


def assert_load_failure_then_recovery(
    cluster: Cluster, path: str, issue: str, *, stuck: bool = False
) -> None:
    state = desired_state(cluster.model_path)
    state["model"] = {"LocalToAgent": path}
    put(cluster, state)
    statuses = ("Stuck",) if stuck else ("AttemptedAndRetrying", "Stuck")
    agent = probe(
        cluster,
        lambda a: issue in issue_names(a) and a["state_application_status"] in statuses,
        f"{issue} with state application status in {statuses}",
    )
    assert path in issue_model_paths(agent), agent["issues"]
    assert agent["slots_total"] == 0
    assert cluster.agents[AGENT].alive, cluster.agents[AGENT].log()
    recovered = restore_good_state(cluster)
    assert recovered["state_application_status"] == "Applied"
    assert problems(recovered) == []
