"""Small images as data URIs, made with Pillow at test time (no fixtures files to keep)."""

from __future__ import annotations

import base64
import io

from PIL import Image


def data_uri(data: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def image_uri(
    color: str | tuple[int, int, int] = "red", size: tuple[int, int] = (48, 32), fmt: str = "PNG"
) -> str:
    """A one-colour image in ``fmt`` (PNG, JPEG, GIF, BMP, WEBP) as a data URI."""
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, fmt)
    return data_uri(out.getvalue(), f"image/{fmt.lower()}")


def striped_uri(size: tuple[int, int] = (64, 64)) -> str:
    """A PNG with stripes, so that two different images really differ."""
    image = Image.new("RGB", size, "white")
    for x in range(0, size[0], 8):
        for y in range(size[1]):
            image.putpixel((x, y), (0, 0, 0))
    out = io.BytesIO()
    image.save(out, "PNG")
    return data_uri(out.getvalue(), "image/png")


def svg_uri() -> str:
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="120" height="80">'
        '<rect width="120" height="80" fill="#3366ff"/><circle cx="60" cy="40" r="30" '
        'fill="#ffcc00"/></svg>'
    )
    return data_uri(svg.encode(), "image/svg+xml")
