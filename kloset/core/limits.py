"""How much one request or catalog photo may hold: plain values, so configuration can name them without the core.

Each bound has a KLOSET_ variable. Shapes are counted before anything is converted: counting a polygon's points
costs nothing, turning a million of them into arrays does not.
"""

from dataclasses import dataclass

from kloset.core.errors import InvalidInput


@dataclass(frozen=True)
class InputLimits:
    """The defaults are Settings' defaults (README: Configuration)."""

    max_pixels: int = 40_000_000  # KLOSET_MAX_IMAGE_PIXELS
    max_label_bytes: int = 4 * 1024 * 1024  # KLOSET_MAX_LABEL_BYTES
    max_garments: int = 16  # KLOSET_MAX_GARMENTS_PER_REQUEST
    max_polygons: int = 64  # KLOSET_MAX_POLYGONS_PER_GARMENT
    max_points: int = 10_000  # KLOSET_MAX_POINTS_PER_POLYGON

    def check_polygons(self, count: int, what: str) -> None:
        """Refuse a garment outlined by more than max_polygons polygons; `what` names the garment."""
        if count > self.max_polygons:
            raise InvalidInput(
                f"{what} has {count} polygons; a garment may have at most {self.max_polygons} "
                "(KLOSET_MAX_POLYGONS_PER_GARMENT)"
            )

    def check_points(self, count: int, what: str) -> None:
        """Refuse a polygon of more than max_points points; `what` names the polygon."""
        if count > self.max_points:
            raise InvalidInput(
                f"{what} has {count} points; a polygon may have at most {self.max_points} "
                "(KLOSET_MAX_POINTS_PER_POLYGON)"
            )

    def check_label_size(self, size: int) -> None:
        """Refuse label JSON of more than max_label_bytes bytes, before it is parsed."""
        if size > self.max_label_bytes:
            raise InvalidInput(
                f"label is {size} bytes, over the limit of {self.max_label_bytes} bytes (KLOSET_MAX_LABEL_BYTES)"
            )
