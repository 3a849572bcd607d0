"""Load and normalise images safely, and encode them for parquet.

Every image that reaches a training or evaluation file goes through :func:`load_image`:

- decompression bombs are refused *before* decoding (explicit pixel-count check on the header, and
  Pillow's own ``DecompressionBombWarning`` turned into an error);
- EXIF orientation is applied (``ImageOps.exif_transpose``), so a phone photo is upright;
- any mode becomes RGB; transparency (RGBA, LA, P with a transparent colour) is composited on
  white, because a transparent pixel decoded as black would change what the guard sees;
- a missing or corrupt file raises :class:`~data_prep.errors.RowError` naming the row, the field and
  the image file (or "image bytes (N bytes)" for an image that never was a file).

:func:`prepare_image` adds the parquet step: shrink to fit a box, and keep the original bytes when
nothing had to change (a PNG/JPEG that is already RGB, upright and small enough), which avoids a
lossy or slow re-encode for the common case.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from PIL import Image, ImageOps, UnidentifiedImageError

from data_prep.errors import RowError

#: Largest image accepted, in pixels (width * height). Pillow's own default limit (about 89.5 MP);
#: anything bigger is almost surely a decompression bomb or a scan no guard input needs.
MAX_IMAGE_PIXELS = 89_478_485
#: Formats whose bytes are stored as they are when no change is needed.
PASSTHROUGH_FORMATS = ("PNG", "JPEG")
_EXIF_ORIENTATION = 0x0112

ImageSource = Union[str, os.PathLike, bytes, bytearray, dict, Image.Image]


@dataclass(frozen=True)
class PreparedImage:
    """An image ready for a parquet ``bytes`` cell."""

    data: bytes
    width: int
    height: int
    #: shrunk to fit the box
    resized: bool
    #: the stored bytes are a new encoding (not the source file's bytes)
    reencoded: bool


# Pillow names an in-memory source by its repr ("cannot identify image file <_io.BytesIO object at 0x…>").
_BUFFER_REPR = re.compile(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>")


@dataclass(frozen=True)
class _Opened:
    """A lazily opened image (header only), its raw bytes when the source had them, and what to call it."""

    image: Image.Image
    raw: Optional[bytes]
    #: the file path, or "image bytes (N bytes)": named in every error about this image
    name: str


def _error_text(err: BaseException, name: str) -> str:
    """Pillow's message with the in-memory buffer replaced by the image's name."""
    return _BUFFER_REPR.sub(name, str(err)) or type(err).__name__


def _open(source: ImageSource, *, row_id: str, field: str, root: Optional[Path]) -> _Opened:
    """Open lazily (header only); also keep the raw bytes and the source's name (path) for errors."""
    if isinstance(source, Image.Image):
        return _Opened(source, None, "in-memory image")
    path_name: Optional[str] = None
    if isinstance(source, dict):  # Hugging Face Image feature / verl image dict
        path_name = str(source["path"]) if source.get("path") else None
        if source.get("bytes") is not None:
            source = source["bytes"]
        elif path_name:
            source = source["path"]
        else:
            raise RowError(row_id, field, "missing image", "image dict has neither 'bytes' nor 'path'")
    if isinstance(source, (bytes, bytearray)):
        raw = bytes(source)
        name = path_name or f"image bytes ({len(raw)} bytes)"
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_absolute() and root is not None:
            path = Path(root) / path
        if not path.is_file():
            raise RowError(row_id, field, "missing image", f"image file not found: {path}")
        raw, name = path.read_bytes(), str(path)
    else:
        raise RowError(row_id, field, "bad image", f"unsupported image value of type {type(source).__name__}")
    try:
        with warnings.catch_warnings():  # the size is checked explicitly in _decode, with the row named
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return _Opened(Image.open(io.BytesIO(raw)), raw, name)
    except Image.DecompressionBombError as err:
        raise RowError(row_id, field, "image too large", f"{name}: refused as a decompression bomb: {err}") from None
    except UnidentifiedImageError:
        raise RowError(
            row_id, field, "corrupt image", f"cannot read image {name}: not a known image format, or corrupt"
        ) from None
    except (OSError, ValueError) as err:
        raise RowError(row_id, field, "corrupt image", f"cannot read image {name}: {_error_text(err, name)}") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB, with any transparency composited on white (P/LA/RGBA/PA); CMYK/L/I/F converted."""
    if image.mode == "RGB":
        return image
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16/32-bit greyscale: scale to 8 bit
        image = image.point(lambda v: v / 256).convert("L")
    return image.convert("RGB")


def load_image(
    source: ImageSource,
    *,
    row_id: str,
    field: str = "images[0]",
    root: Optional[Path] = None,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> Image.Image:
    """Decode ``source`` into an upright RGB image, or raise :class:`RowError`.

    Parameters
    ----------
    source : path, bytes, dict with ``bytes``/``path``, or PIL image
    row_id, field : str
        Named in every error message.
    root : Path, optional
        Folder that relative paths are resolved against.
    max_pixels : int, default=MAX_IMAGE_PIXELS
        Larger images are refused before decoding (decompression-bomb guard).
    """
    return _decode(_open(source, row_id=row_id, field=field, root=root), row_id=row_id, field=field,
                   max_pixels=max_pixels)


def _decode(opened: _Opened, *, row_id: str, field: str, max_pixels: int) -> Image.Image:
    image, name = opened.image, opened.name
    width, height = image.size
    if width <= 0 or height <= 0:
        raise RowError(row_id, field, "corrupt image", f"image {name} has an empty size {width}x{height}")
    if width * height > max_pixels:
        raise RowError(
            row_id, field, "image too large",
            f"image {name} is {width}x{height} = {width * height} pixels, above the limit of {max_pixels} "
            "(possible decompression bomb)",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
            image = ImageOps.exif_transpose(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise RowError(row_id, field, "image too large", f"{name}: refused as a decompression bomb: {err}") from None
    except (OSError, SyntaxError, ValueError) as err:  # truncated data, bad chunks, bad EXIF
        raise RowError(row_id, field, "corrupt image", f"cannot decode image {name}: {_error_text(err, name)}") from None
    return to_rgb(image)


def fit_within(image: Image.Image, max_width: int, max_height: int) -> Image.Image:
    """Shrink (never enlarge) to fit ``max_width`` x ``max_height``, keeping the aspect ratio."""
    width, height = image.size
    scale = min(max_width / width, max_height / height, 1.0)
    if scale >= 1.0:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def encode_image(image: Image.Image, fmt: str = "PNG", *, quality: int = 95) -> bytes:
    """PNG (lossless, default) or JPEG bytes of an RGB image."""
    fmt = fmt.upper()
    if fmt == "JPG":
        fmt = "JPEG"
    if fmt not in PASSTHROUGH_FORMATS:
        raise ValueError(f"image format must be PNG or JPEG, got {fmt!r}")
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, format="JPEG", quality=quality)
    else:
        image.save(buffer, format="PNG", compress_level=1)  # fast: parquet compresses again anyway
    return buffer.getvalue()


def prepare_image(
    source: ImageSource,
    *,
    row_id: str,
    field: str = "images[0]",
    root: Optional[Path] = None,
    max_side: Optional[int] = None,
    fmt: str = "PNG",
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> PreparedImage:
    """Load, validate, normalise and encode one image for a parquet cell.

    The source bytes are kept unchanged when they are already PNG/JPEG, RGB, without an EXIF
    rotation, and within ``max_side``; otherwise the normalised image is encoded as ``fmt``.
    """
    opened = _open(source, row_id=row_id, field=field, root=root)
    raw, source_format, mode = opened.raw, opened.image.format, opened.image.mode
    rotated = _exif_orientation(opened.image) not in (None, 1)
    image = _decode(opened, row_id=row_id, field=field, max_pixels=max_pixels)
    resized = False
    if max_side is not None and max(image.size) > max_side:
        image = fit_within(image, max_side, max_side)
        resized = True
    if raw is not None and not resized and not rotated and mode == "RGB" and source_format in PASSTHROUGH_FORMATS:
        return PreparedImage(raw, image.width, image.height, resized=False, reencoded=False)
    return PreparedImage(encode_image(image, fmt), image.width, image.height, resized=resized, reencoded=True)


def _exif_orientation(image: Image.Image) -> Optional[int]:
    try:
        return image.getexif().get(_EXIF_ORIENTATION)
    except Exception:  # malformed EXIF: _decode reports it if decoding fails too
        return None


def image_size(source: Any, *, row_id: str, field: str = "images[0]", root: Optional[Path] = None) -> tuple[int, int]:
    """``(width, height)`` from the header only (cheap; used for token estimates)."""
    return _open(source, row_id=row_id, field=field, root=root).image.size
