"""Helpers of the desired-state e2e tests (issue 4): the local HTTP file server of
``tests/integration/sources`` standing in for a model host, agents with their own environment,
and small predicates over agents snapshots. ``conftest.py`` puts ``tests/e2e`` on ``sys.path``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
from e2e_cluster import Cluster, Process, desired_state

E2E_DIR = Path(__file__).resolve().parents[1]


def _load_fileserver() -> Any:
    """``tests/integration/sources/_fileserver.py``, imported by path under a name of its own."""
    name = "paddler_e2e_state_fileserver"
    if name in sys.modules:
        return sys.modules[name]
    path = E2E_DIR.parent / "integration" / "sources" / "_fileserver.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


fileserver = _load_fileserver()
FileServer = fileserver.FileServer
Route = fileserver.Route


def start_agent(
    cluster: Cluster, name: str, slots: int, *, env: dict[str, str] | None = None
) -> Process:
    """``cluster.start_agent`` with extra environment variables (e.g. ``PADDLER_CACHE_DIR``)."""
    with pytest.MonkeyPatch.context() as patch:
        for key, value in (env or {}).items():
            patch.setenv(key, value)
        return cluster.start_agent(name, slots)


def url_state(url: str, **parameters: Any) -> dict[str, Any]:
    """A desired state whose model is ``{"Url": {"url": url}}``."""
    state = desired_state(None, **parameters)
    state["model"] = {"Url": {"url": url}}
    return state


def issue_names(agent: dict[str, Any]) -> list[str]:
    """Variant names of an agent's issues (each issue is a one-key object)."""
    names: list[str] = []
    for issue in agent["issues"]:
        names.extend(issue if isinstance(issue, dict) else [issue])
    return names


def issue_model_paths(agent: dict[str, Any]) -> list[str]:
    paths = []
    for issue in agent["issues"]:
        if isinstance(issue, dict):
            for params in issue.values():
                if isinstance(params, dict) and isinstance(params.get("model_path"), str):
                    paths.append(params["model_path"])
    return paths


def only(agents: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    found = [a for a in agents if a["name"] == name]
    return found[0] if found else None


def problems(agent: dict[str, Any]) -> list[Any]:
    """The agent's issues, without the notice that it runs without llama.cpp's extra kernels
    (which machines with AMX in a VM always show, and others never do)."""
    return [
        i for i in agent["issues"] if not (isinstance(i, dict) and "ExtraBufferTypesDisabled" in i)
    ]


def loaded(agent: dict[str, Any] | None, model_path: str | None = None) -> bool:
    """The agent has applied its state: slots started, no issues (and this model, if given)."""
    return (
        agent is not None
        and agent["slots_total"] > 0
        and agent["state_application_status"] == "Applied"
        and not problems(agent)
        and (model_path is None or agent["model_path"] == model_path)
    )
