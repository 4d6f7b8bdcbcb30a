"""The vector store of catalog garments: what kloset stores and the interface every backend implements.

Point ids are UUIDv5 of the item id, so indexing the same item again overwrites it instead of duplicating it.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from kloset.core.garments.labels import Group

# Fixed forever: changing it would orphan every point already indexed.
ITEM_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://kloset.dev/item")


def point_id(item_id: str) -> str:
    """The store's id for a catalog garment: stable across runs and machines."""
    return str(uuid.uuid5(ITEM_NAMESPACE, item_id))


@dataclass(frozen=True)
class CatalogGarment:
    item_id: str
    group: Group
    category: str
    color: str
    source: str
    model_version: str
    embedding: np.ndarray | None = None

    @classmethod
    def from_payload(cls, payload: dict, embedding: np.ndarray | None = None) -> "CatalogGarment":
        """A garment back from its stored payload."""
        return cls(
            item_id=payload.get("item_id", ""),
            group=Group(payload.get("group", Group.TOP.value)),
            category=payload.get("category", ""),
            color=payload.get("color", ""),
            source=payload.get("source", ""),
            model_version=payload.get("model_version", ""),
            embedding=embedding,
        )

    def payload(self) -> dict[str, str]:
        """What the store keeps next to the vector, and filters on."""
        return {
            "item_id": self.item_id,
            "group": self.group.value,
            "category": self.category,
            "color": self.color,
            "source": self.source,
            "model_version": self.model_version,
        }


@dataclass(frozen=True)
class Hit:
    garment: CatalogGarment
    score: float


class GarmentStore(Protocol):
    """What kloset needs from a vector store; a second backend implements the same five calls."""

    def upsert(self, garments: Sequence[CatalogGarment]) -> None:
        """Insert or overwrite garments (by item id); returns once they are durable and searchable."""

    def query(
        self,
        vector: np.ndarray,
        limit: int,
        categories: Sequence[str] = (),
        colors: Sequence[str] = (),
        exclude_item: str | None = None,
    ) -> list[Hit]:
        """Nearest garments by cosine similarity, restricted to the categories and colors given (if any)."""

    def retrieve(self, item_id: str) -> CatalogGarment | None:
        """One garment with its embedding, or None."""

    def count(self) -> int:
        """How many garments are indexed."""

    def delete(self, item_ids: Sequence[str]) -> None:
        """Remove garments; unknown ids are ignored."""
