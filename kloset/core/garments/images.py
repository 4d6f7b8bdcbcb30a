"""Decoding untrusted image bytes into RGB arrays, refusing what would hurt the service."""

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from kloset.core.errors import InvalidInput

# Our own pixel limit is checked before decoding; PIL's warning-level check would only duplicate it.
Image.MAX_IMAGE_PIXELS = None
# The photo formats kloset reads (those `kloset ingest` picks up). Pillow knows some forty, and not every reader keeps
# to the header's size: an ICO whose directory says 16x16 decodes the 20000x20000 PNG inside it while being opened,
# before any limit is checked. Whatever else Pillow could open is "not an image" here.
FORMATS = ("JPEG", "PNG", "WEBP", "BMP")
_MAX_REASON_CHARS = 200


@contextmanager
def _untrusted() -> Iterator[None]:
    """Turn everything PIL can raise on hostile bytes into InvalidInput saying why."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except InvalidInput:
        raise
    except UnidentifiedImageError:
        raise InvalidInput(
            f"not an image, or an image format kloset cannot read (it reads {', '.join(FORMATS)})"
        ) from None
    except MemoryError:  # not the caller's doing with the pixel limit in place: let it be INTERNAL, and logged
        raise
    except Exception as exc:  # readers of malformed files raise OSError, struct.error, IndexError, KeyError, ...
        reason = str(exc) or type(exc).__name__
        if len(reason) > _MAX_REASON_CHARS:
            reason = reason[:_MAX_REASON_CHARS] + "…"
        raise InvalidInput(f"image is corrupt or truncated: {reason}") from None


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Open lazily (header only) and refuse empty, pixel-less or oversized images before any decoding."""
    if not data:
        raise InvalidInput("image is empty (0 bytes)")
    image = Image.open(io.BytesIO(data), formats=FORMATS)
    width, height = image.size
    if width <= 0 or height <= 0:
        raise InvalidInput(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise InvalidInput(
            f"image is {width}x{height} pixels, over the limit of {max_pixels} pixels (KLOSET_MAX_IMAGE_PIXELS)"
        )
    return image


def image_size(data: bytes, max_pixels: int) -> tuple[int, int]:
    """(width, height) from the header alone, with decode_image's checks, for when the pixels are not needed."""
    with _untrusted():
        return _open(data, max_pixels).size


def decode_image(data: bytes, max_pixels: int, *, apply_exif_orientation: bool = False) -> np.ndarray:
    """Decode image bytes into an (H, W, 3) uint8 RGB array, or raise InvalidInput saying why not.

    EXIF orientation is applied only on request: K-Fashion polygons are in stored-pixel coordinates.
    """
    with _untrusted():
        image = _open(data, max_pixels)
        image.load()
        if apply_exif_orientation:
            image = ImageOps.exif_transpose(image)
        rgb = image if image.mode == "RGB" else image.convert("RGB")  # convert() copies even an RGB image
    return np.asarray(rgb, dtype=np.uint8)


def encode_jpeg(pixels: np.ndarray, quality: int = 90) -> bytes:
    """Encode an RGB array as JPEG bytes."""
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=quality)
    return out.getvalue()
