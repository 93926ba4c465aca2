"""Builds llama-server and llama-batched-bench from the llama.cpp that our llama-cpp-python vendors.

The anchor for the engine's speed must be the same llama.cpp, built the same way (llama.cpp's
own CMake defaults: native CPU, OpenMP), so the sources come from the sdist of the pinned
llama-cpp-python on PyPI. The binaries are cached under ``~/.cache/paddler-benchmarks``.

    python benchmarks/anchor_build.py        # build (about 10 minutes on 2 cores), print paths
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

TARGETS = ("llama-server", "llama-batched-bench")


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "paddler-benchmarks"


def pinned_version() -> str:
    return importlib.metadata.version("llama-cpp-python")


def binaries(version: str | None = None) -> dict[str, Path]:
    build = cache_root() / f"llama.cpp-{version or pinned_version()}" / "build" / "bin"
    return {name: build / name for name in TARGETS}


def build(version: str | None = None, *, jobs: int | None = None) -> dict[str, Path]:
    """Download the sdist, build both targets, return their paths (cached after the first run)."""
    version = version or pinned_version()
    wanted = binaries(version)
    if all(path.is_file() for path in wanted.values()):
        return wanted
    root = cache_root() / f"llama.cpp-{version}"
    source = root / "src"
    if not (source / "CMakeLists.txt").is_file():
        with tempfile.TemporaryDirectory() as tmp:
            print(f"downloading the llama-cpp-python {version} sdist", file=sys.stderr)
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--no-binary",
                    ":all:",
                    "--no-deps",
                    f"llama-cpp-python=={version}",
                    "-d",
                    tmp,
                ],
                check=True,
            )
            (archive,) = Path(tmp).glob("llama_cpp_python-*.tar.gz")
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
            (unpacked,) = Path(tmp).glob("llama_cpp_python-*/vendor/llama.cpp")
            root.mkdir(parents=True, exist_ok=True)
            unpacked.rename(source)
    build_dir = root / "build"
    subprocess.run(
        [
            "cmake",
            "-S",
            str(source),
            "-B",
            str(build_dir),
            "-DCMAKE_BUILD_TYPE=Release",
            "-DLLAMA_CURL=OFF",
            "-DLLAMA_BUILD_TESTS=OFF",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    print("building llama-server and llama-batched-bench", file=sys.stderr)
    subprocess.run(
        [
            "cmake",
            "--build",
            str(build_dir),
            "--target",
            *TARGETS,
            "-j",
            str(jobs or os.cpu_count() or 2),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    missing = [str(path) for path in wanted.values() if not path.is_file()]
    if missing:
        raise RuntimeError(f"the build did not produce {', '.join(missing)}")
    return wanted


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=None)
    args = parser.parse_args()
    for name, path in build(jobs=args.jobs).items():
        print(f"{name}: {path}")
