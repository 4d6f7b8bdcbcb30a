"""Cutting one garment out of a photo: mask its polygons, crop the box, letterbox onto a neutral square."""

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from kloset.core.errors import InvalidInput
from kloset.core.garments.regions import Region

# Mid-gray: about zero after the backbone's preprocessing, i.e. "no signal".
NEUTRAL_RGB = (127, 127, 127)
# Enough pixels for stable color statistics; more only costs time.
MAX_COLOR_SAMPLES = 20_000


@dataclass(frozen=True)
class GarmentCrop:
    pixels: np.ndarray  # (size, size, 3) uint8: the garment, aspect ratio kept, on NEUTRAL_RGB
    garment_pixels: np.ndarray  # (N, 3) uint8 RGB pixels inside the garment's mask, for color statistics


def garment_mask(height: int, width: int, region: Region) -> np.ndarray:
    """Rasterise the region's polygons (their union) into a boolean (height, width) mask."""
    if region.is_whole_image:
        return np.ones((height, width), dtype=bool)
    if region.mask is not None:
        return region.mask
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for polygon in region.outline():
        draw.polygon([(float(x), float(y)) for x, y in polygon], fill=1, outline=1)
    return np.asarray(canvas, dtype=bool)


def crop_garment(image: np.ndarray, region: Region, size: int) -> GarmentCrop:
    """Mask the garment, crop its bounding box and fit it into a size x size square without distortion.

    The original project stretched crops to a square; keeping the aspect ratio keeps a skirt a skirt.
    """
    height, width = image.shape[:2]
    mask = garment_mask(height, width, region)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise InvalidInput("garment polygon covers no pixels")
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    box_mask = mask[y0:y1, x0:x1]
    cut = np.where(box_mask[..., None], image[y0:y1, x0:x1], np.array(NEUTRAL_RGB, dtype=np.uint8))
    return GarmentCrop(pixels=letterbox(cut, size), garment_pixels=_sample(image[mask]))


def letterbox(pixels: np.ndarray, size: int) -> np.ndarray:
    """Resize so the longer side is `size`, centred on a neutral square."""
    h, w = pixels.shape[:2]
    scale = size / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    resized = Image.fromarray(pixels).resize((new_w, new_h), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (size, size), NEUTRAL_RGB)
    canvas.paste(resized, ((size - new_w) // 2, (size - new_h) // 2))
    return np.asarray(canvas, dtype=np.uint8)


def _sample(pixels: np.ndarray) -> np.ndarray:
    if len(pixels) <= MAX_COLOR_SAMPLES:
        return pixels
    step = len(pixels) / MAX_COLOR_SAMPLES
    return pixels[(np.arange(MAX_COLOR_SAMPLES) * step).astype(np.int64)]
