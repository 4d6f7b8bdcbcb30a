"""Query views for retrieval benchmarks: a seeded new view of a catalog photo, whose right answer is known.

The view, per the benchmark's spec: a crop keeping 85-100 % of the photo, mirrored half the time,
brightness/contrast +-15 %, JPEG quality 60.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kloset.core.garments import images

MIN_AREA_KEPT = 0.85
MIRROR_PROBABILITY = 0.5
MAX_BRIGHTNESS_SHIFT = 0.15
MAX_CONTRAST_CHANGE = 0.15
VIEW_JPEG_QUALITY = 60
# Catalog photos are our own files, not untrusted uploads: the limit only guards against absurd sizes.
MAX_PIXELS = 100_000_000


@dataclass(frozen=True)
class ViewTransform:
    """How a view is made from a photo: the crop box in the photo's pixels (width, height: the view's size),
    then a mirror, then brightness (additive, fraction of 255) and contrast (factor around 128)."""

    left: int
    top: int
    width: int
    height: int
    mirrored: bool
    brightness: float
    contrast: float

    @classmethod
    def draw(cls, rng: np.random.Generator, width: int, height: int) -> "ViewTransform":
        """Draw a transform for a width x height photo: area kept uniform in [0.85, 1.0], both sides alike."""
        if width < 1 or height < 1:
            raise ValueError(f"photo has no pixels ({width}x{height})")
        side = math.sqrt(rng.uniform(MIN_AREA_KEPT, 1.0))
        # Rounding up so that the kept area never falls below the drawn fraction.
        crop_width = min(width, math.ceil(width * side))
        crop_height = min(height, math.ceil(height * side))
        return cls(
            left=int(rng.integers(0, width - crop_width + 1)),
            top=int(rng.integers(0, height - crop_height + 1)),
            width=crop_width,
            height=crop_height,
            mirrored=bool(rng.random() < MIRROR_PROBABILITY),
            brightness=float(rng.uniform(-MAX_BRIGHTNESS_SHIFT, MAX_BRIGHTNESS_SHIFT)),
            contrast=float(rng.uniform(1.0 - MAX_CONTRAST_CHANGE, 1.0 + MAX_CONTRAST_CHANGE)),
        )

    def apply_to_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """The view of an (H, W, 3) uint8 RGB photo: crop, mirror, then brightness/contrast, as uint8."""
        photo_height, photo_width = pixels.shape[:2]
        if self.left + self.width > photo_width or self.top + self.height > photo_height:
            raise ValueError(f"crop box {self} does not fit a {photo_width}x{photo_height} photo")
        view = pixels[self.top : self.top + self.height, self.left : self.left + self.width]
        if self.mirrored:
            view = view[:, ::-1]
        adjusted = (view.astype(np.float32) - 128.0) * self.contrast + 128.0 + self.brightness * 255.0
        return np.clip(np.rint(adjusted), 0, 255).astype(np.uint8)

    def apply_to_points(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) x, y in the photo -> the view's pixel coordinates, clipped inside the view."""
        moved = np.asarray(points, dtype=np.float64).reshape(-1, 2) - (self.left, self.top)
        if self.mirrored:
            moved[:, 0] = self.width - 1 - moved[:, 0]
        # Clipping keeps a garment that the crop cuts off partly a valid polygon inside the view.
        return np.clip(moved, 0.0, (self.width - 1, self.height - 1))


def encode_jpeg(pixels: np.ndarray, quality: int = VIEW_JPEG_QUALITY) -> bytes:
    """Encode an (H, W, 3) uint8 RGB array as JPEG bytes, at the views' quality by default."""
    return images.encode_jpeg(pixels, quality=quality)


def _collapsed(points: np.ndarray) -> bool:
    """Whether a polygon spans less than one pixel across or down (or has no points): no garment left."""
    return len(points) == 0 or bool(np.ptp(points[:, 0]) < 1.0 or np.ptp(points[:, 1]) < 1.0)


def make_view(
    image_bytes: bytes, polygons: Sequence[np.ndarray], seed: int
) -> tuple[bytes, list[np.ndarray | None], ViewTransform]:
    """The seeded view of a photo: its JPEG bytes, the garment polygons in its pixels, and the transform.

    A polygon the crop leaves under one pixel wide or high comes back as None in its place: skip that garment.
    The same bytes and seed always give the same view."""
    pixels = images.decode_image(image_bytes, MAX_PIXELS, apply_exif_orientation=False)
    height, width = pixels.shape[:2]
    transform = ViewTransform.draw(np.random.default_rng(seed), width, height)
    moved = [transform.apply_to_points(polygon) for polygon in polygons]
    kept = [None if _collapsed(points) else points for points in moved]
    return encode_jpeg(transform.apply_to_pixels(pixels)), kept, transform
