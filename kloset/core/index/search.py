"""Similarity search: classify the query garment, then find its nearest neighbours of the same kind."""

from collections.abc import Sequence
from dataclasses import dataclass

from kloset.core.classifier import AttributeClassifier
from kloset.core.errors import InvalidInput, NotFound
from kloset.core.garments.labels import Group, parse_category, parse_color
from kloset.core.garments.regions import Region
from kloset.core.index.store import GarmentStore, Hit

MAX_TOP_K = 1000


@dataclass(frozen=True)
class SearchFilter:
    """Caller's restriction; an empty field means "the query garment's own value"."""

    categories: tuple[str, ...] = ()
    colors: tuple[str, ...] = ()

    @classmethod
    def parse(cls, categories: Sequence[str] = (), colors: Sequence[str] = ()) -> "SearchFilter":
        """Validate names (codes or Korean K-Fashion names) and map them to codes."""
        return cls(tuple(parse_category(c) for c in categories), tuple(parse_color(c) for c in colors))

    def resolve(self, category: str, color: str) -> "SearchFilter":
        """The filter to apply for a garment of this category and color."""
        return SearchFilter(self.categories or (category,), self.colors or (color,))


@dataclass(frozen=True)
class GarmentResults:
    group: Group
    category: str
    color: str
    filter: SearchFilter
    results: list[Hit]


class SearchEngine:
    def __init__(self, classifier: AttributeClassifier, store: GarmentStore, default_top_k: int) -> None:
        self._classifier = classifier
        self._store = store
        self._default_top_k = default_top_k

    def _top_k(self, top_k: int) -> int:
        if top_k < 0 or top_k > MAX_TOP_K:
            raise InvalidInput(f"top_k must be between 1 and {MAX_TOP_K} (0 for the default), got {top_k}")
        return top_k or self._default_top_k

    def search_by_image(
        self, image: bytes, regions: Sequence[Region], search_filter: SearchFilter, top_k: int = 0
    ) -> list[GarmentResults]:
        """One result list per query garment, each filtered by that garment's category and color."""
        limit = self._top_k(top_k)
        classification = self._classifier.classify(image, regions)
        answers = []
        for garment in classification.garments:
            applied = search_filter.resolve(garment.category, garment.color)
            hits = self._store.query(garment.embedding, limit, applied.categories, applied.colors)
            answers.append(GarmentResults(garment.group, garment.category, garment.color, applied, hits))
        return answers

    def search_by_item(self, item_id: str, search_filter: SearchFilter, top_k: int = 0) -> GarmentResults:
        """Garments similar to a catalog garment, excluding itself."""
        limit = self._top_k(top_k)
        if not item_id:
            raise InvalidInput("item_id is empty")
        item = self._store.retrieve(item_id)
        if item is None:
            raise NotFound(f"no catalog garment {item_id!r}")
        applied = search_filter.resolve(item.category, item.color)
        hits = self._store.query(item.embedding, limit, applied.categories, applied.colors, exclude_item=item_id)
        return GarmentResults(item.group, item.category, item.color, applied, hits)

    def indexed(self) -> int:
        """How many garments the store holds."""
        return self._store.count()
