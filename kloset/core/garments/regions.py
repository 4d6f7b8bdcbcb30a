"""Where a garment is in an image: polygons or a box, validated against the image they belong to."""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from kloset.core.errors import InvalidInput
from kloset.core.garments.labels import Group

# Annotation tools put vertices on the border pixel's centre or a hair outside it; beyond this it is an error.
EDGE_TOLERANCE_PX = 2.0


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    width: float
    height: float

    def as_polygon(self) -> np.ndarray:
        """The box's four corners, as pixel centres."""
        x0, y0 = self.x, self.y
        x1, y1 = self.x + self.width - 1, self.y + self.height - 1
        return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


@dataclass(frozen=True)
class Region:
    """One garment in an image. An empty region (no polygon, no box) means the whole image."""

    group: Group | None = None
    polygons: tuple[np.ndarray, ...] = field(default_factory=tuple)
    box: Box | None = None
    mask: np.ndarray | None = None  # (H, W) bool, from the segmenter; exclusive with polygons and box

    @property
    def is_whole_image(self) -> bool:
        return not self.polygons and self.box is None and self.mask is None

    def bounding_box(self, width: int, height: int) -> Box:
        """The garment's extent in an image of width x height (the whole image for an empty region)."""
        if self.mask is not None and self.mask.any():
            rows, cols = np.flatnonzero(self.mask.any(axis=1)), np.flatnonzero(self.mask.any(axis=0))
            return Box(float(cols[0]), float(rows[0]), float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1))
        outline = self.outline()
        if not outline:
            return Box(0.0, 0.0, float(width), float(height))
        points = np.concatenate(outline)
        (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
        return Box(float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1))

    def outline(self) -> tuple[np.ndarray, ...]:
        """The polygons that define the garment's pixels (a box counts as a rectangle)."""
        if self.polygons:
            return self.polygons
        if self.box is not None:
            return (self.box.as_polygon(),)
        return ()


def make_polygon(points: Sequence[Sequence[float]], what: str = "polygon") -> np.ndarray:
    """Check a list of (x, y) vertices and return it as an (N, 2) float array."""
    if len(points) < 3:
        raise InvalidInput(f"{what} has {len(points)} points; a polygon needs at least 3")
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2:
        raise InvalidInput(f"{what} must be a list of (x, y) points")
    if not np.all(np.isfinite(array)):
        raise InvalidInput(f"{what} has a coordinate that is NaN or infinite")
    return array


def make_box(x: float, y: float, width: float, height: float, what: str = "box") -> Box:
    """Check a box's numbers (finite, at least 1x1) and return it."""
    if not all(math.isfinite(v) for v in (x, y, width, height)):
        raise InvalidInput(f"{what} has a coordinate that is NaN or infinite")
    if width < 1 or height < 1:
        raise InvalidInput(f"{what} is {width}x{height}; it must be at least 1x1 pixel")
    return Box(float(x), float(y), float(width), float(height))


def fit_region(region: Region, width: int, height: int, what: str = "garment") -> Region:
    """Validate a region against an image of width x height and clip vertices that graze its border."""
    if region.mask is not None:
        if region.mask.shape != (height, width):
            raise InvalidInput(f"{what} mask is {region.mask.shape}, the image {height}x{width}")
        return region
    polygons = tuple(_fit_polygon(p, width, height, f"{what} polygon {i + 1}") for i, p in enumerate(region.polygons))
    box = region.box
    if box is not None:
        corners = _fit_polygon(box.as_polygon(), width, height, f"{what} box")
        box = Box(corners[0, 0], corners[0, 1], corners[2, 0] - corners[0, 0] + 1, corners[2, 1] - corners[0, 1] + 1)
    return Region(group=region.group, polygons=polygons, box=box)


def _fit_polygon(polygon: np.ndarray, width: int, height: int, what: str) -> np.ndarray:
    xs, ys = polygon[:, 0], polygon[:, 1]
    t = EDGE_TOLERANCE_PX
    if xs.min() < -t or ys.min() < -t or xs.max() > width - 1 + t or ys.max() > height - 1 + t:
        raise InvalidInput(
            f"{what} reaches outside the {width}x{height} image "
            f"(x {xs.min():.0f}..{xs.max():.0f}, y {ys.min():.0f}..{ys.max():.0f})"
        )
    clipped = np.stack([np.clip(xs, 0, width - 1), np.clip(ys, 0, height - 1)], axis=1)
    span = clipped.max(axis=0) - clipped.min(axis=0)
    if span[0] < 1 or span[1] < 1:
        raise InvalidInput(f"{what} has no area")
    return clipped
