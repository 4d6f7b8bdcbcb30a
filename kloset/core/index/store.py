"""The vector store of catalog garments: what kloset stores and the interface every backend implements.

Point ids are UUIDv5 of the item id, so indexing the same item again overwrites it instead of duplicating it.
Every point carries two named vectors: `visual` (the model's embedding) and `color` (the garment's own pixels as a
color vector), so search can fuse what a garment looks like with what color it is.
"""

import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

import numpy as np

from kloset.core.garments.labels import Group
from kloset.core.garments.regions import Box

# Model versions a catalog can hold at once that model_versions() reports (a reindex brings them down to one).
MAX_MODEL_VERSIONS = 1000
# Fixed forever: changing it would orphan every point already indexed.
ITEM_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://kloset.dev/item")
VISUAL = "visual"
COLOR = "color"


class StoreBackend(StrEnum):
    AUTO = "auto"  # SERVER when a Qdrant URL is configured, else EDGE
    EDGE = "edge"  # Qdrant Edge: Qdrant's engine in this process (the embedded default)
    LOCAL = "local"  # qdrant-client local mode: brute force in Python, kept for tests and old folders
    SERVER = "server"  # qdrant-client against a Qdrant server or cluster


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
    label_digest: str = ""  # the photo's K-Fashion label blob, to cut the garment out again (reindex); "" if none

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
            label_digest=payload.get("label_digest", ""),
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
        if self.label_digest:
            payload["label_digest"] = self.label_digest
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

    def matches(self) -> list[tuple[str, list[str]]]:
        """Each payload field this filter restricts, with the values it may take: what every backend translates
        into its own filter (one condition per field, any of its values)."""
        fields = (
            ("group", [g.value for g in self.groups]),
            ("category", list(self.categories)),
            ("color", list(self.colors)),
            ("photo_id", list(self.photos)),
        )
        return [(key, values) for key, values in fields if values]

    def excluded_points(self) -> list[str]:
        """The point ids of the garments left out (SearchByItem leaves out the garment it searches by)."""
        return [point_id(item_id) for item_id in self.exclude_items]


@dataclass(frozen=True)
class Candidate:
    """A garment found by one of its vectors, with that vector's cosine similarity to the query."""

    garment: CatalogGarment
    similarity: float


class GarmentSink(Protocol):
    """Where indexed garments are written: a store, or the catalog a reindex is building."""

    def upsert(self, garments: Sequence[CatalogGarment]) -> None:
        """Insert or overwrite garments (by item id); returns once they are durable."""


class CatalogRebuild(Protocol):
    """A new catalog built beside the live one (a reindex): searches and writes go to the live one until
    go_live() switches the store over atomically."""

    def upsert(self, garments: Sequence[CatalogGarment]) -> None:
        """Write into the new catalog; a garment written to the live store since the rebuild began wins (Edge)."""

    def count(self) -> int:
        """Garments in the new catalog."""

    def missed(self, batch: int) -> Iterator[list[CatalogGarment]]:
        """Garments of the live (after go_live: the former) catalog that the new one lacks, with their vectors:
        written by other processes during the rebuild (a Qdrant server). Edge writes both, so it yields none."""

    def go_live(self, should_stop: Callable[[], bool] = ...) -> bool:
        """Make the new catalog the live one (alias or CURRENT switched atomically); False when stopped first."""

    def retire(self) -> None:
        """After go_live and a last missed() pass: delete the former catalog."""

    def abandon(self) -> None:
        """Delete the new catalog; the live one stays as it was."""


class GarmentStore(Protocol):
    """What kloset needs from a vector store; every backend implements these calls."""

    def upsert(self, garments: Sequence[CatalogGarment]) -> None:
        """Insert or overwrite garments (by item id); returns once they are durable and searchable."""

    def candidates(
        self, vector: np.ndarray, using: str, where: StoreFilter, limit: int, *, exact: bool = False
    ) -> list[Candidate]:
        """The nearest garments by one named vector (VISUAL or COLOR), best first, each with the other vector for
        kloset's ranking to rescore (only the small color vector travels in the usual case, using VISUAL).
        exact=True scans every matching point instead of walking an index (what recall is measured against)."""

    def garments(self, where: StoreFilter, limit: int) -> list[CatalogGarment]:
        """Garments matching a filter, with their vectors, in no particular order (e.g. one photo's outfit)."""

    def scan(self, batch: int, *, vectors: bool = True) -> Iterator[list[CatalogGarment]]:
        """Every garment (with its vectors unless vectors=False), batch by batch, in no particular order."""

    def retrieve(self, item_id: str) -> CatalogGarment | None:
        """One garment with its vectors, or None."""

    def count(self) -> int:
        """How many garments are indexed."""

    def model_versions(self) -> dict[str, int]:
        """Garments per model_version, from the payload index (cheap enough for every metrics scrape)."""

    def delete(self, item_ids: Sequence[str]) -> None:
        """Remove garments; unknown ids are ignored."""

    def optimize(self, should_stop: Callable[[], bool] = ...) -> bool:
        """Build search indexes after a bulk load, off the request path; True when anything changed."""

    def unindexed(self) -> int:
        """Garments not yet in a search index (searched exactly until the next optimize)."""

    def start_rebuild(self) -> CatalogRebuild:
        """Begin a new, empty catalog beside the live one (one at a time; a compaction in progress is abandoned)."""

    def close(self) -> None:
        """Make every write durable and release the store (a rebuild in progress is abandoned)."""


def garment_from_point(point) -> CatalogGarment:
    """A garment back from a Qdrant point or record (either backend's: both carry .payload and .vector)."""
    vectors = point.vector if isinstance(point.vector, dict) else {}
    return CatalogGarment.from_payload(
        point.payload or {}, _as_array(vectors.get(VISUAL)), _as_array(vectors.get(COLOR))
    )


def _as_array(vector) -> np.ndarray | None:
    return None if vector is None else np.asarray(vector, dtype=np.float32)


def vector_list(vector: np.ndarray | None) -> list[float]:
    """A vector as the list both Qdrant APIs take; a garment without one cannot be stored."""
    if vector is None:
        raise ValueError("a garment needs its embedding and color vector to be stored")
    return np.asarray(vector, dtype=np.float32).tolist()
