"""Image parts → RGB pixels for mtmd (spec §6.8): base64 data URIs only, sized to fit.

PNG, JPEG, GIF (first frame), BMP and WebP are decoded with Pillow, and so are TIFF, ICO and
PNM, which Paddler's decoder reads too; SVG (text that starts with ``<svg`` or ``<?xml``, or
declared ``image/svg+xml``) is rasterised offline with resvg,
scaled to fit. Any side longer than ``image_resize_to_fit`` is shrunk with the aspect ratio
kept (Lanczos). Transparent pixels are laid on white (a transparent diagram is not black).
Every failure is an `ImageError` whose message the client sees in ``ImageDecodingFailed``.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from paddler.engine._mtmd import RgbImage

#: Decoders Pillow may use: formats Paddler's decoder reads that have a signature (not TGA, whose
#: loose header would take some text for an image), and none of Pillow's rarer plugins.
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", "ICO", "PPM")
#: The most pixels a source image may have before it is decoded (a decompression bomb guard;
#: a 48-megapixel photo fits).
MAX_SOURCE_PIXELS = 64_000_000

_SVG_START = re.compile(rb"^\s*(?:\xef\xbb\xbf)?\s*<(?:svg|\?xml)\b", re.IGNORECASE)
# href/xlink:href values that leave the document (a file on the agent, a URL); `#id` and
# `data:` stay inside it.
_EXTERNAL_HREF = re.compile(
    r"""\bhref\s*=\s*(?:"\s*(?!#|data:)[^"]+"|'\s*(?!#|data:)[^']+')""", re.IGNORECASE
)
_EXTERNAL_CSS = re.compile(r"""@import|url\(\s*['"]?\s*(?!#|data:)""", re.IGNORECASE)


class ImageError(Exception):
    """An image part that cannot be used; the message says why, for the client."""


def decode_image_url(url: str, max_side: int) -> RgbImage:
    """The pixels of one ``image_url`` part, no side longer than ``max_side``."""
    data, media_type = _read_data_uri(url)
    if media_type == "image/svg+xml" or _SVG_START.match(data[:512]):
        return _rasterise_svg(data, max_side)
    return _decode_bitmap(data, max_side)


def _read_data_uri(url: str) -> tuple[bytes, str]:
    stripped = url.strip()
    if stripped[:5].lower() != "data:":
        raise ImageError(
            "Remote image URLs are not supported; send the image inline as a base64 data URI "
            "(data:image/png;base64,...)"
        )
    header, comma, payload = stripped[5:].partition(",")
    if not comma:
        raise ImageError("the data URI has no comma between its header and its data")
    params = [p.strip().lower() for p in header.split(";")]
    if "base64" not in params[1:]:
        raise ImageError("only base64 data URIs are supported (data:<media type>;base64,...)")
    try:
        data = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageError(f"the data URI's base64 payload is invalid ({exc})") from exc
    if not data:
        raise ImageError("the data URI carries no image data")
    return data, params[0]


def _decode_bitmap(data: bytes, max_side: int) -> RgbImage:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=FORMATS) as image:
                width, height = image.size
                if width * height > MAX_SOURCE_PIXELS:
                    raise ImageError(
                        f"the image is {width}x{height} pixels; at most {MAX_SOURCE_PIXELS} "
                        "pixels are decoded"
                    )
                if image.format == "JPEG":  # decode at 1/2, 1/4 or 1/8 scale if that still fits
                    image.draft("RGB", _fitted(width, height, max_side))
                image.seek(0)  # the first frame of an animation
                image.load()
                upright = ImageOps.exif_transpose(image)  # phone photos carry their rotation
                return _to_rgb(upright, max_side)
    except ImageError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageError(
            "the data is not an image in a supported format "
            "(PNG, JPEG, GIF, BMP, WebP, TIFF, ICO, PNM, SVG)"
        ) from exc
    except Image.DecompressionBombWarning as exc:
        raise ImageError(f"the image is too large to decode ({exc})") from exc
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageError(f"the image could not be decoded ({exc})") from exc


def _fitted(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The size with no side over ``max_side`` and the aspect ratio kept."""
    if max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _rasterise_svg(data: bytes, max_side: int) -> RgbImage:
    import resvg_py

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImageError("the SVG image is not UTF-8 text") from exc
    if _EXTERNAL_HREF.search(text) or _EXTERNAL_CSS.search(text):
        raise ImageError("SVG images may not refer to other files or URLs (only #ids and data:)")
    try:
        png = resvg_py.svg_to_bytes(svg_string=text, width=max_side, height=max_side)
    except BaseException as exc:  # resvg raises ValueError, and PanicException on bugs
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise ImageError(f"the SVG image could not be rendered ({exc})") from exc
    with Image.open(io.BytesIO(bytes(png)), formats=["PNG"]) as image:
        image.load()
        return _to_rgb(image, max_side)


def _to_rgb(image: Image.Image, max_side: int) -> RgbImage:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    rgb = image.convert("RGB")
    size = _fitted(rgb.width, rgb.height, max_side)
    if size != rgb.size:
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
    return RgbImage(width=rgb.width, height=rgb.height, pixels=rgb.tobytes())
