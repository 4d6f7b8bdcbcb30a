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
    y0, y1, x0, x1 = _outline_box(region, height, width)
    mask = np.zeros((height, width), dtype=bool)
    mask[y0:y1, x0:x1] = _rasterise(region, y0, y1, x0, x1)
    return mask


def crop_garment(image: np.ndarray, region: Region, size: int) -> GarmentCrop:
    """Mask the garment, crop its bounding box and fit it into a size x size square without distortion.

    The original project stretched crops to a square; keeping the aspect ratio keeps a skirt a skirt. Polygons
    are rasterised within their own bounding box only: a whole-photo mask for each garment cost more than the
    crop itself (ingest spent most of a garment's CPU here).
    """
    height, width = image.shape[:2]
    if region.is_whole_image or region.mask is not None:
        by, bx, mask = 0, 0, garment_mask(height, width, region)
    else:
        by, _, bx, _ = box = _outline_box(region, height, width)
        mask = _rasterise(region, *box)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise InvalidInput("garment polygon covers no pixels")
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    box_mask = mask[y0:y1, x0:x1]
    box_pixels = image[by + y0 : by + y1, bx + x0 : bx + x1]
    cut = np.where(box_mask[..., None], box_pixels, np.array(NEUTRAL_RGB, dtype=np.uint8))
    # Row-major within the box is row-major in the photo: the same pixels, in the same order, as image[mask].
    return GarmentCrop(pixels=letterbox(cut, size), garment_pixels=_sample(box_pixels[box_mask]))


def _outline_box(region: Region, height: int, width: int) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1): the pixels the outline can touch, within the image (empty if it lies outside)."""
    points = np.concatenate(region.outline())
    x0 = min(max(int(np.floor(points[:, 0].min())) - 1, 0), width)
    y0 = min(max(int(np.floor(points[:, 1].min())) - 1, 0), height)
    x1 = max(min(int(np.ceil(points[:, 0].max())) + 2, width), x0)
    y1 = max(min(int(np.ceil(points[:, 1].max())) + 2, height), y0)
    return y0, y1, x0, x1


def _rasterise(region: Region, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """The polygons' union as a (y1 - y0, x1 - x0) mask, drawn shifted by the box's integer corner."""
    if y1 <= y0 or x1 <= x0:
        return np.zeros((max(y1 - y0, 0), max(x1 - x0, 0)), dtype=bool)
    canvas = Image.new("L", (x1 - x0, y1 - y0), 0)
    draw = ImageDraw.Draw(canvas)
    for polygon in region.outline():
        draw.polygon([(float(x) - x0, float(y) - y0) for x, y in polygon], fill=1, outline=1)
    return np.asarray(canvas, dtype=bool)


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
