"""Catalog garments as small pictures, for people to judge results by: the garment's box in its stored photo."""

from collections.abc import Sequence

import numpy as np
from PIL import Image

from kloset.core.errors import InvalidInput, KlosetError
from kloset.core.garments.images import decode_image, encode_jpeg
from kloset.core.garments.regions import Box
from kloset.core.index.store import GarmentStore
from kloset.core.ingest.blobs import BlobStore

DEFAULT_MAX_ITEMS = 32  # Settings.max_garment_images' default: each one decodes a whole stored photo
MAX_SIDE = 1024


class GarmentImages:
    def __init__(self, store: GarmentStore, blobs: BlobStore, max_pixels: int, max_items: int = DEFAULT_MAX_ITEMS):
        self._store = store
        self._blobs = blobs
        self._max_pixels = max_pixels
        self._max_items = max_items

    def crops(self, item_ids: Sequence[str], max_side: int = 256) -> list[tuple[str, bytes]]:
        """(item id, JPEG) for each id, in order; empty bytes where the garment or its photo is not at hand."""
        if len(item_ids) > self._max_items:
            raise InvalidInput(f"a request may ask for at most {self._max_items} garment images "
                               f"(KLOSET_MAX_GARMENT_IMAGES); this one asks for {len(item_ids)}")  # fmt: skip
        if not 16 <= max_side <= MAX_SIDE:
            raise InvalidInput(f"max_side must be between 16 and {MAX_SIDE} pixels, got {max_side}")
        return [(item_id, self._crop(item_id, max_side)) for item_id in item_ids]

    def _crop(self, item_id: str, max_side: int) -> bytes:
        garment = self._store.retrieve(item_id) if item_id else None
        if garment is None or not garment.image_digest:
            return b""
        try:
            pixels = decode_image(self._blobs.get(garment.image_digest), self._max_pixels)
        except KlosetError:  # the photo was removed from the blob folder: the garment stays searchable
            return b""
        return encode_jpeg(thumbnail(pixels, garment.box, max_side), quality=85)


def thumbnail(pixels: np.ndarray, box: Box | None, max_side: int) -> np.ndarray:
    """The box's pixels (the whole photo without one), scaled so the longer side is at most max_side."""
    if box is not None:
        height, width = pixels.shape[:2]
        x0, y0 = max(int(box.x), 0), max(int(box.y), 0)
        x1, y1 = min(int(np.ceil(box.x + box.width)), width), min(int(np.ceil(box.y + box.height)), height)
        if x1 > x0 and y1 > y0:
            pixels = pixels[y0:y1, x0:x1]
    image = Image.fromarray(pixels)
    image.thumbnail((max_side, max_side))
    return np.asarray(image)
