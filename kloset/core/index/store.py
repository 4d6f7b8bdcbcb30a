"""The vector store of catalog garments: what kloset stores and the interface every backend implements.

Point ids are UUIDv5 of the item id, so indexing the same item again overwrites it instead of duplicating it.
Every point carries two named vectors: `visual` (the model's embedding) and `color` (the garment's own pixels as a
color vector), so search can fuse what a garment looks like with what color it is.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from kloset.core.garments.labels import Group
from kloset.core.garments.regions import Box

# Fixed forever: changing it would orphan every point already indexed.
ITEM_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://kloset.dev/item")
VISUAL = "visual"
COLOR = "color"


def point_id(item_id: str) -> str:
    """The store's id for a catalog garment: stable across runs and machines."""
    return str(uuid.uuid5(ITEM_NAMESPACE, item_id))


def photo_of(item_id: str) -> str:
    """The photo (outfit) a garment id belongs to: "0001/top" -> "0001"."""
    return item_id.rsplit("/", 1)[0] if "/" in item_id else item_id


@dataclass(frozen=True)
class CatalogGarment:
    item_id: str
    group: Group
    category: str
    color: str
    source: str
    model_version: str
    embedding: np.ndarray | None = None
    color_vector: np.ndarray | None = None
    photo_id: str = ""  # the photo's item id; garments of one photo form an outfit
    image_digest: str = ""  # the photo's blob, to show the garment to people
    box: Box | None = None  # the garment's extent in that photo

    @property
    def photo(self) -> str:
        return self.photo_id or photo_of(self.item_id)

    @classmethod
    def from_payload(
        cls, payload: dict, embedding: np.ndarray | None = None, color_vector: np.ndarray | None = None
    ) -> "CatalogGarment":
        """A garment back from its stored payload."""
        box = payload.get("box")
        return cls(
            item_id=payload.get("item_id", ""),
            group=Group(payload.get("group", Group.TOP.value)),
            category=payload.get("category", ""),
            color=payload.get("color", ""),
            source=payload.get("source", ""),
            model_version=payload.get("model_version", ""),
            embedding=embedding,
            color_vector=color_vector,
            photo_id=payload.get("photo_id", ""),
            image_digest=payload.get("image_digest", ""),
            box=Box(*box) if isinstance(box, list) and len(box) == 4 else None,
        )

    def payload(self) -> dict:
        """What the store keeps next to the vectors, and filters on."""
        payload: dict = {
            "item_id": self.item_id,
            "photo_id": self.photo,
            "group": self.group.value,
            "category": self.category,
            "color": self.color,
            "source": self.source,
            "model_version": self.model_version,
            "image_digest": self.image_digest,
        }
        if self.box is not None:
            payload["box"] = [self.box.x, self.box.y, self.box.width, self.box.height]
        return payload


@dataclass(frozen=True)
class StoreFilter:
    """A hard restriction on payload values: each non-empty field is an OR, the fields are ANDed."""

    groups: tuple[Group, ...] = ()
    categories: tuple[str, ...] = ()
    colors: tuple[str, ...] = ()
    photos: tuple[str, ...] = ()
    exclude_items: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Candidate:
    """A garment found by one of its vectors, with that vector's cosine similarity to the query."""

    garment: CatalogGarment
    similarity: float


class GarmentStore(Protocol):
    """What kloset needs from a vector store; every backend implements these calls."""

    def upsert(self, garments: Sequence[CatalogGarment]) -> None:
        """Insert or overwrite garments (by item id); returns once they are durable and searchable."""

    def candidates(self, vector: np.ndarray, using: str, where: StoreFilter, limit: int) -> list[Candidate]:
        """The nearest garments by one named vector (VISUAL or COLOR), best first, each with the other vector for
        kloset's ranking to rescore (only the small color vector travels in the usual case, using VISUAL)."""

    def garments(self, where: StoreFilter, limit: int) -> list[CatalogGarment]:
        """Garments matching a filter, with their vectors, in no particular order (e.g. one photo's outfit)."""

    def retrieve(self, item_id: str) -> CatalogGarment | None:
        """One garment with its vectors, or None."""

    def count(self) -> int:
        """How many garments are indexed."""

    def delete(self, item_ids: Sequence[str]) -> None:
        """Remove garments; unknown ids are ignored."""
