"""Image parts → pixels (spec §6.8): the formats, the resize, and every bad input's message."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from paddler.engine._images import ImageError, decode_image_url


def data_uri(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def pixel(decoded: object, x: int, y: int) -> tuple[int, int, int]:
    width = decoded.width  # type: ignore[attr-defined]
    offset = (y * width + x) * 3
    return tuple(decoded.pixels[offset : offset + 3])  # type: ignore[attr-defined,return-value]


@pytest.mark.parametrize(
    ("fmt", "media_type"),
    [
        ("PNG", "image/png"),
        ("JPEG", "image/jpeg"),
        ("GIF", "image/gif"),
        ("BMP", "image/bmp"),
        ("WEBP", "image/webp"),
    ],
)
def test_each_bitmap_format_decodes_to_rgb(fmt: str, media_type: str) -> None:
    image = Image.new("RGB", (40, 30), (200, 30, 30))
    decoded = decode_image_url(data_uri(encoded(image, fmt), media_type), 1024)
    assert (decoded.width, decoded.height) == (40, 30)
    assert len(decoded.pixels) == 40 * 30 * 3
    r, g, b = pixel(decoded, 20, 15)
    assert r > 150 and g < 80 and b < 80  # still red (JPEG/WebP/GIF are lossy or paletted)


def test_the_declared_media_type_does_not_matter() -> None:
    """The bytes say what the image is, as with Paddler's decoder."""
    jpeg = encoded(Image.new("RGB", (8, 8), "blue"), "JPEG")
    assert decode_image_url(data_uri(jpeg, "image/png"), 64).width == 8


def test_a_larger_image_is_resized_with_its_aspect_ratio() -> None:
    image = Image.new("RGB", (2000, 500), "green")
    decoded = decode_image_url(data_uri(encoded(image, "PNG")), 1024)
    assert (decoded.width, decoded.height) == (1024, 256)


def test_a_tall_jpeg_is_resized_too() -> None:
    image = Image.new("RGB", (300, 3000), "white")
    decoded = decode_image_url(data_uri(encoded(image, "JPEG"), "image/jpeg"), 100)
    assert (decoded.width, decoded.height) == (10, 100)


def test_a_smaller_image_is_not_enlarged() -> None:
    decoded = decode_image_url(data_uri(encoded(Image.new("RGB", (5, 7)), "PNG")), 1024)
    assert (decoded.width, decoded.height) == (5, 7)


def test_transparent_pixels_become_white() -> None:
    image = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    decoded = decode_image_url(data_uri(encoded(image, "PNG")), 64)
    assert pixel(decoded, 1, 1) == (255, 255, 255)


def test_the_first_frame_of_an_animated_gif() -> None:
    frames = [Image.new("RGB", (6, 6), c) for c in ("red", "blue")]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100)
    decoded = decode_image_url(data_uri(out.getvalue(), "image/gif"), 64)
    assert pixel(decoded, 3, 3)[0] > 200


def test_exif_rotation_is_applied() -> None:
    """A phone photo stored sideways with EXIF orientation 6 is seen upright."""
    image = Image.new("RGB", (40, 20), "white")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    decoded = decode_image_url(data_uri(encoded(image, "JPEG", exif=exif), "image/jpeg"), 1024)
    assert (decoded.width, decoded.height) == (20, 40)


def test_svg_is_rasterised_to_fit() -> None:
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" width="300" height="100">'
        b'<rect width="300" height="100" fill="#ff0000"/></svg>'
    )
    decoded = decode_image_url(data_uri(svg, "image/svg+xml"), 150)
    assert (decoded.width, decoded.height) == (150, 50)
    assert pixel(decoded, 75, 25) == (255, 0, 0)


def test_svg_is_recognised_by_its_text_and_drawn_on_white() -> None:
    svg = (
        b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20">'
        b'<circle cx="10" cy="10" r="2" fill="black"/></svg>'
    )
    decoded = decode_image_url(data_uri(svg, "application/octet-stream"), 20)
    assert pixel(decoded, 0, 0) == (255, 255, 255)  # the transparent background is white
    assert pixel(decoded, 10, 10) == (0, 0, 0)


@pytest.mark.parametrize(
    "href",
    ['href="/etc/hostname"', "xlink:href='file:///etc/passwd'", 'href="https://x.test/a.png"'],
)
def test_svg_may_not_reach_outside_itself(href: str) -> None:
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'width="10" height="10"><image {href} width="10" height="10"/></svg>'
    )
    with pytest.raises(ImageError, match="may not refer to other files or URLs"):
        decode_image_url(data_uri(svg.encode(), "image/svg+xml"), 64)


def test_svg_that_is_not_svg() -> None:
    with pytest.raises(ImageError, match="the SVG image could not be rendered"):
        decode_image_url(data_uri(b"<svg <<< nope", "image/svg+xml"), 64)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://example.com/cat.png", "Remote image URLs are not supported"),
        ("http://127.0.0.1/cat.png", "Remote image URLs are not supported"),
        ("file:///etc/passwd", "Remote image URLs are not supported"),
        ("data:image/png;base64", "has no comma"),
        ("data:image/png;base64,!!!not base64!!!", "base64 payload is invalid"),
        ("data:image/png;base64,", "carries no image data"),
        ("data:image/png,rawbytes", "only base64 data URIs are supported"),
        ("data:text/plain;base64," + base64.b64encode(b"hello").decode(), "not an image"),
    ],
)
def test_bad_image_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        decode_image_url(url, 1024)


@pytest.mark.parametrize("fmt", ["TIFF", "ICO", "PPM"])
def test_other_formats_paddler_reads_are_read_too(fmt: str) -> None:
    data = encoded(Image.new("RGB", (16, 16), "red"), fmt)
    assert decode_image_url(data_uri(data, "image/x-any"), 64).width == 16


def test_a_format_outside_the_list_is_refused() -> None:
    pcx = encoded(Image.new("RGB", (4, 4)), "PCX")
    with pytest.raises(ImageError, match=r"supported format \(PNG, JPEG, GIF, BMP, WebP, TIFF"):
        decode_image_url(data_uri(pcx, "image/x-pcx"), 64)


def test_a_truncated_image_is_refused() -> None:
    png = encoded(Image.new("RGB", (64, 64), "red"), "PNG")
    with pytest.raises(ImageError, match="could not be decoded"):
        decode_image_url(data_uri(png[: len(png) // 2]), 64)


def test_a_decompression_bomb_is_refused_before_decoding() -> None:
    """A tiny PNG that claims 9000x8000 pixels (72 M) is refused from its header."""
    bomb = encoded(Image.new("1", (9000, 8000)), "PNG", optimize=True)
    assert len(bomb) < 200_000
    with pytest.raises(ImageError, match="9000x8000 pixels; at most 64000000"):
        decode_image_url(data_uri(bomb), 1024)


def test_whitespace_inside_the_base64_is_allowed() -> None:
    png = encoded(Image.new("RGB", (3, 3)), "PNG")
    text = base64.b64encode(png).decode()
    wrapped = "\n".join(text[i : i + 20] for i in range(0, len(text), 20))
    assert decode_image_url(f"data:image/png;base64,{wrapped}", 64).width == 3
