"""Write a tiny multimodal projector (mmproj) with random weights for a text model.

``python -m paddler.testing.make_projector OUT.gguf [--text-embd 576] [--image-size 64]
[--patch-size 16]`` writes the LLaVA-1.5 "mlp" projector shape that llama.cpp's mtmd loads: a
one-block CLIP vision tower followed by two linear layers that map patches into the text
model's embedding space. Its answers are noise; it exists so that every step of the image path
(decoding, mtmd tokenizing, encoding, evaluating image chunks) runs on a machine where no vision
model can be downloaded. One image always becomes ``(image_size / patch_size) ** 2`` tokens.

Needs the ``gguf`` package (``pip install gguf``; it is in Paddler's ``test`` extra).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

#: The SmolLM2-135M demo model's embedding width.
DEMO_TEXT_EMBD = 576


def image_tokens(image_size: int, patch_size: int) -> int:
    """How many tokens one image becomes with a projector of these sizes."""
    return (image_size // patch_size) ** 2


def write_projector(
    path: str | Path,
    *,
    text_embd: int = DEMO_TEXT_EMBD,
    image_size: int = 64,
    patch_size: int = 16,
    vision_embd: int = 64,
    heads: int = 4,
    seed: int = 0,
) -> Path:
    """Write the projector GGUF to ``path`` and return it.

    The vision tower has two blocks because LLaVA reads the features of the second-to-last
    one: one block runs. Weights are small random numbers (F32, a couple of MB in all).
    """
    try:
        import gguf
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        raise RuntimeError("writing a projector needs the gguf package: pip install gguf") from exc
    if image_size % patch_size:
        raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
    if vision_embd % heads:
        raise ValueError(f"vision_embd {vision_embd} is not a multiple of heads {heads}")
    rng = np.random.default_rng(seed)
    blocks = 2
    ffn = 2 * vision_embd
    patches = image_tokens(image_size, patch_size)
    path = Path(path)
    writer: Any = gguf.GGUFWriter(str(path), "clip")
    writer.add_name("paddler test projector (random weights)")
    writer.add_description("LLaVA-1.5 mlp projector shape with random weights; answers are noise")
    writer.add_string("clip.projector_type", "mlp")
    writer.add_bool("clip.has_vision_encoder", True)
    writer.add_bool("clip.has_text_encoder", False)
    writer.add_bool("clip.has_llava_projector", True)
    writer.add_bool("clip.use_gelu", True)
    writer.add_uint32("clip.vision.image_size", image_size)
    writer.add_uint32("clip.vision.patch_size", patch_size)
    writer.add_uint32("clip.vision.embedding_length", vision_embd)
    writer.add_uint32("clip.vision.feed_forward_length", ffn)
    writer.add_uint32("clip.vision.block_count", blocks)
    writer.add_uint32("clip.vision.projection_dim", text_embd)
    writer.add_uint32("clip.vision.attention.head_count", heads)
    writer.add_float32("clip.vision.attention.layer_norm_epsilon", 1e-5)
    writer.add_array("clip.vision.image_mean", [0.5, 0.5, 0.5])
    writer.add_array("clip.vision.image_std", [0.5, 0.5, 0.5])

    def tensor(name: str, *shape: int, scale: float = 0.02) -> None:
        """numpy shapes are ggml's ``ne`` reversed: (out, in) for a matmul weight."""
        data = rng.normal(0.0, scale, size=shape).astype(np.float32)
        writer.add_tensor(name, data)

    def ones(name: str, size: int) -> None:
        writer.add_tensor(name, np.ones(size, dtype=np.float32))

    def zeros(name: str, size: int) -> None:
        writer.add_tensor(name, np.zeros(size, dtype=np.float32))

    tensor("v.patch_embd.weight", vision_embd, 3, patch_size, patch_size)
    zeros("v.patch_embd.bias", vision_embd)
    tensor("v.position_embd.weight", patches, vision_embd)
    ones("v.pre_ln.weight", vision_embd)
    zeros("v.pre_ln.bias", vision_embd)
    for i in range(blocks):
        for part in ("attn_q", "attn_k", "attn_v", "attn_out"):
            tensor(f"v.blk.{i}.{part}.weight", vision_embd, vision_embd)
            zeros(f"v.blk.{i}.{part}.bias", vision_embd)
        for norm in ("ln1", "ln2"):
            ones(f"v.blk.{i}.{norm}.weight", vision_embd)
            zeros(f"v.blk.{i}.{norm}.bias", vision_embd)
        tensor(f"v.blk.{i}.ffn_up.weight", ffn, vision_embd)
        zeros(f"v.blk.{i}.ffn_up.bias", ffn)
        tensor(f"v.blk.{i}.ffn_down.weight", vision_embd, ffn)
        zeros(f"v.blk.{i}.ffn_down.bias", vision_embd)
    tensor("mm.0.weight", text_embd, vision_embd)
    zeros("mm.0.bias", text_embd)
    tensor("mm.2.weight", text_embd, text_embd)
    zeros("mm.2.bias", text_embd)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m paddler.testing.make_projector", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("out", type=Path, help="where to write the .gguf")
    parser.add_argument("--text-embd", type=int, default=DEMO_TEXT_EMBD)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--patch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        write_projector(
            args.out,
            text_embd=args.text_embd,
            image_size=args.image_size,
            patch_size=args.patch_size,
            seed=args.seed,
        )
    except (ValueError, RuntimeError) as exc:
        parser.error(str(exc))
    except OSError as exc:
        parser.error(f"cannot write {args.out}: {exc.strerror or exc}")
    tokens = image_tokens(args.image_size, args.patch_size)
    sys.stdout.write(f"wrote {args.out} ({tokens} tokens per image)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
