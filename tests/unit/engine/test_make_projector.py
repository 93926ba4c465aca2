"""`python -m paddler.testing.make_projector`: the test projector's file, as mtmd will read it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gguf


def test_cli_writes_a_small_mlp_projector(tmp_path: Path) -> None:
    out = tmp_path / "mmproj.gguf"
    done = subprocess.run(
        [sys.executable, "-m", "paddler.testing.make_projector", str(out), "--image-size", "32"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "4 tokens per image" in done.stdout
    assert out.stat().st_size < 4 * 1024 * 1024
    reader = gguf.GGUFReader(str(out))
    fields = {name: reader.fields[name] for name in reader.fields}
    projector_type = fields["clip.projector_type"]
    assert bytes(projector_type.parts[projector_type.data[0]]).decode() == "mlp"
    size = fields["clip.vision.image_size"]
    assert int(size.parts[size.data[0]][0]) == 32
    tensors = {t.name: t for t in reader.tensors}
    # mm.2 maps into the demo model's 576-wide embeddings (ggml order: in, out)
    assert list(tensors["mm.2.weight"].shape) == [576, 576]
    assert list(tensors["v.position_embd.weight"].shape) == [64, 4]


def test_cli_rejects_an_image_size_that_is_not_whole_patches(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "paddler.testing.make_projector",
            str(tmp_path / "x.gguf"),
            "--image-size",
            "50",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "image_size 50 is not a multiple of patch_size 16" in done.stderr
    assert not (tmp_path / "x.gguf").exists()


def test_cli_names_an_output_path_it_cannot_write(tmp_path: Path) -> None:
    out = tmp_path / "missing-dir" / "x.gguf"
    done = subprocess.run(
        [sys.executable, "-m", "paddler.testing.make_projector", str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert f"cannot write {out}" in done.stderr
    assert "Traceback" not in done.stderr
