"""Recognising and measuring image files.

We trust the bytes, never the extension: a text file called ``.jpg`` is not an image, and a PNG
called ``.jpg`` is a PNG. Every image is fully decoded once on import so a truncated file is
caught here rather than in the middle of a training run.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass

from PIL import Image, ImageFile

#: Pillow's own bomb limit is 2 x 89.5 MP; we refuse above that before decoding anything.
MAX_PIXELS = 2 * 89_478_485

SUPPORTED_FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "WEBP")

#: EXIF orientations 5-8 rotate by 90 degrees, so the upright width and height swap.
_TRANSPOSED = {5, 6, 7, 8}


class BadImageError(Exception):
    """The bytes are not an image we can import; the message is the reason for the user."""


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int  # upright, as a person sees it (EXIF orientation applied)
    height: int
    orientation: int  # EXIF orientation tag, 1 when absent
    raw_width: int  # as stored in the file
    raw_height: int
    mode: str


def sniff_format(head: bytes) -> str | None:
    """Name the image format from the first bytes of a file, or None if it is not one we take."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"BM") and len(head) >= 14:
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


def upright_size(raw_width: int, raw_height: int, orientation: int) -> tuple[int, int]:
    if orientation in _TRANSPOSED:
        return raw_height, raw_width
    return raw_width, raw_height


def probe(data: bytes, *, decode: bool = True) -> ImageInfo:
    """Check that ``data`` is a complete, decodable image and measure it.

    With ``decode=False`` only the header is read: for bytes already known to be an imported
    image (fsck, once they hash to their name), where decoding again would prove nothing new.
    Raises :class:`BadImageError` with a reason a person understands.
    """
    if not data:
        raise BadImageError("empty file (0 bytes)")
    fmt = sniff_format(data[:16])
    if fmt is None:
        raise BadImageError("not an image (content is not JPEG, PNG, BMP, TIFF or WebP)")
    # Never decode the rest of a file that turned out truncated.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            # Pillow warns (rather than fails) between 89 MP and 179 MP; we decide ourselves.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # Only the plugin of the sniffed format is asked to open the bytes: the same one
            # that would take them anyway, without first offering them to the others.
            with Image.open(io.BytesIO(data), formats=[fmt]) as im:
                if im.format not in SUPPORTED_FORMATS:
                    raise BadImageError(f"unsupported image format {im.format}")
                raw_w, raw_h = im.size
                if raw_w <= 0 or raw_h <= 0:
                    raise BadImageError(f"image declares an empty size {raw_w}x{raw_h}")
                if raw_w * raw_h > MAX_PIXELS:
                    raise BadImageError(_bomb_reason(raw_w, raw_h))
                orientation = _orientation(im)
                mode = im.mode
                if decode:
                    im.load()
    except BadImageError:
        raise
    except Image.DecompressionBombError as e:
        # Pillow refuses before we see the size; its message carries the pixel count.
        m = re.search(r"\((\d+) pixels\)", str(e))
        declared = f"declares {int(m.group(1)) / 1e6:.0f} MP, " if m else ""
        raise BadImageError(
            f"decompression bomb refused: {declared}limit {MAX_PIXELS / 1e6:.0f} MP"
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as e:
        raise BadImageError(f"cannot decode {fmt}: {e}") from None
    w, h = upright_size(raw_w, raw_h, orientation)
    return ImageInfo(fmt, w, h, orientation, raw_w, raw_h, mode)


def _bomb_reason(w: int, h: int) -> str:
    return (
        f"decompression bomb refused: declares {w}x{h} = {w * h / 1e6:.0f} MP, "
        f"limit {MAX_PIXELS / 1e6:.0f} MP"
    )


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:  # a damaged EXIF block must not stop an otherwise good image
        return 1
    try:
        value = int(value)
    except (TypeError, ValueError):
        return 1
    return value if 1 <= value <= 8 else 1


def open_upright(data: bytes) -> Image.Image:
    """Decode image bytes and rotate them upright, as a person (and our boxes) see them."""
    from PIL import ImageOps

    im = Image.open(io.BytesIO(data))
    out = ImageOps.exif_transpose(im)
    return out if out is not None else im
