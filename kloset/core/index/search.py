"""Similarity search: classify the query garment, prefetch candidates from the store, rank them by policy.

A caller's filter is always a hard AND of ORs. Under STRICT the predicted category and color are added to it,
and relaxed in a stated order when they leave fewer than the results asked for, so no list is short without
saying why; SOFT and NONE never exclude a garment of the group (see ranking).
"""

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from kloset.core import request_context
from kloset.core.classifier import AttributeClassifier
from kloset.core.errors import InvalidInput, NotFound, quoted
from kloset.core.garments.labels import Group, categories_of, parse_category, parse_color
from kloset.core.garments.regions import Box, Region
from kloset.core.index.ranking import (
    FilterPolicy,
    Hit,
    QueryGarment,
    RankingWeights,
    likeliest_labels,
    merge_candidates,
    rank,
)
from kloset.core.index.store import COLOR, VISUAL, Candidate, CatalogGarment, GarmentStore, StoreFilter
from kloset.core.models.predictions import GarmentPrediction, top_labels

DEFAULT_MAX_TOP_K = 1000  # Settings.max_top_k's default
MAX_OFFSET = 10_000


@dataclass(frozen=True)
class SearchFilter:
    """The caller's restriction (category in [...] AND color in [...]); empty fields restrict nothing."""

    categories: tuple[str, ...] = ()
    colors: tuple[str, ...] = ()

    @classmethod
    def parse(cls, categories: Sequence[str] = (), colors: Sequence[str] = ()) -> "SearchFilter":
        """Validate names (codes or Korean K-Fashion names) and map them to codes, without repeats."""
        return cls(
            tuple(dict.fromkeys(parse_category(c) for c in categories)),
            tuple(dict.fromkeys(parse_color(c) for c in colors)),
        )


@dataclass(frozen=True)
class SearchOptions:
    policy: FilterPolicy | None = None  # None: the configured default
    offset: int = 0
    min_score: float | None = None
    group_by_photo: bool = False


@dataclass(frozen=True)
class GarmentResults:
    """One result list, with what it was searched for and how: the group, box, predictions and filter."""

    group: Group
    category: str
    color: str
    top_categories: list[tuple[str, float]]
    top_colors: list[tuple[str, float]]
    box: Box | None
    policy: FilterPolicy
    filter: SearchFilter  # the filter that produced the list
    results: list[Hit]
    relaxed: bool = False
    relaxation: str = ""


@dataclass(frozen=True)
class _Query:
    garment: QueryGarment
    group: Group
    category: str
    color: str
    top_categories: list[tuple[str, float]]
    top_colors: list[tuple[str, float]]
    box: Box | None
    exclude: tuple[str, ...] = ()

    @classmethod
    def of_prediction(cls, p: GarmentPrediction) -> "_Query":
        garment = QueryGarment(p.embedding, p.color_vector, p.category_probabilities, p.color_probabilities)
        return cls(garment, p.group, p.category, p.color, p.top_categories, p.top_colors, p.box)

    @classmethod
    def of_catalog(cls, g: CatalogGarment) -> "_Query":
        # A catalog garment's labels are annotations (or the model's at indexing): certain, as far as search knows.
        categories = {c: float(c == g.category) for c in categories_of(g.group)}
        colors = {g.color: 1.0}
        garment = QueryGarment(g.embedding, g.color_vector, categories, colors, labels_known=True)
        return cls(garment, g.group, g.category, g.color, top_labels(categories), top_labels(colors), g.box,
                   (g.item_id,))  # fmt: skip


@dataclass(frozen=True)
class _Step:
    filter: SearchFilter
    relaxation: str = ""


def strict_steps(caller: SearchFilter, query: _Query) -> list[_Step]:
    """The predicted category and color, then: second color, any color, any category of the group.

    What the caller named is never relaxed: only the predicted parts of the filter are widened.
    """
    categories = caller.categories or (query.category,)
    colors = caller.colors or (query.color,)
    steps = [_Step(SearchFilter(categories, colors))]
    if not caller.colors:
        second = tuple(label for label, _ in query.top_colors[:2])
        if len(second) == 2:
            steps.append(_Step(SearchFilter(categories, second), "second color"))
        steps.append(_Step(SearchFilter(categories, ()), "any color"))
    if not caller.categories:
        steps.append(_Step(SearchFilter((), caller.colors), "any category of the group"))
    return steps


class SearchEngine:
    def __init__(
        self,
        classifier: AttributeClassifier,
        store: GarmentStore,
        default_top_k: int,
        *,
        policy: FilterPolicy = FilterPolicy.SOFT,
        weights: RankingWeights | None = None,
        candidates: int = 100,
        max_top_k: int = DEFAULT_MAX_TOP_K,
    ) -> None:
        """default_top_k: results for a request that asks for 0 (KLOSET_TOP_K); max_top_k: the most a request may
        ask for (KLOSET_MAX_TOP_K)."""
        if not 1 <= default_top_k <= max_top_k:
            raise ValueError(f"default_top_k must be between 1 and max_top_k ({max_top_k}), got {default_top_k}")
        self._classifier = classifier
        self._store = store
        self._default_top_k = default_top_k
        self._max_top_k = max_top_k
        self._policy = policy
        self._weights = weights or RankingWeights()
        self._candidates = candidates

    def top_k(self, top_k: int) -> int:
        """The number of results to return: the caller's, or the default for 0; InvalidInput when out of range."""
        if not 0 <= top_k <= self._max_top_k:
            raise InvalidInput(
                f"top_k must be between 1 and {self._max_top_k} (KLOSET_MAX_TOP_K; 0 asks for the default, "
                f"{self._default_top_k}); this request asks for {top_k}"
            )
        return top_k or self._default_top_k

    def allowing(self, top_k: int) -> "SearchEngine":
        """This engine, taking a top_k up to at least `top_k`: for the core's own searches (CompleteLook's similar
        garments, KLOSET_OUTFIT_SIMILAR), which KLOSET_MAX_TOP_K does not bound since no caller chose them."""
        wider = copy.copy(self)
        wider._max_top_k = max(self._max_top_k, top_k)
        return wider

    def _options(self, options: SearchOptions) -> SearchOptions:
        if not 0 <= options.offset <= MAX_OFFSET:
            raise InvalidInput(f"offset must be between 0 and {MAX_OFFSET}, got {options.offset}")
        return replace(options, policy=options.policy or self._policy)

    def search_by_image(
        self,
        image: bytes,
        regions: Sequence[Region],
        search_filter: SearchFilter,
        top_k: int = 0,
        options: SearchOptions = SearchOptions(),
        timings: dict[str, float] | None = None,
    ) -> list[GarmentResults]:
        """One result list per query garment (the segmenter's garments when no region is given).

        timings, when given, receives inference_ms and search_ms: where a request's time went."""
        self.top_k(top_k), self._options(options)  # a bad request fails before the model runs
        started = time.perf_counter()
        classification = self._classifier.classify(image, regions)
        classified = time.perf_counter()
        answers = [self.search_prediction(g, search_filter, top_k, options) for g in classification.garments]
        if timings is not None:
            timings["inference_ms"] = (classified - started) * 1000
            timings["search_ms"] = (time.perf_counter() - classified) * 1000
        return answers

    def search_prediction(
        self,
        prediction: GarmentPrediction,
        search_filter: SearchFilter,
        top_k: int = 0,
        options: SearchOptions = SearchOptions(),
    ) -> GarmentResults:
        """Search for a garment already classified (the benchmark times search apart from inference)."""
        return self._search(_Query.of_prediction(prediction), search_filter, self.top_k(top_k), self._options(options))

    def search_by_item(
        self,
        item_id: str,
        search_filter: SearchFilter,
        top_k: int = 0,
        options: SearchOptions = SearchOptions(),
    ) -> GarmentResults:
        """Garments similar to a catalog garment, excluding itself."""
        limit, options = self.top_k(top_k), self._options(options)
        return self._search(_Query.of_catalog(self._catalog_garment(item_id)), search_filter, limit, options)

    def _catalog_garment(self, item_id: str) -> CatalogGarment:
        if not item_id:
            raise InvalidInput("item_id is empty")
        item = self._store.retrieve(item_id)
        if item is None:
            raise NotFound(f"no catalog garment {quoted(item_id)}")
        return item

    def _search(self, query: _Query, caller: SearchFilter, top_k: int, options: SearchOptions) -> GarmentResults:
        policy = options.policy or self._policy
        wanted = options.offset + top_k
        steps = strict_steps(caller, query) if policy is FilterPolicy.STRICT else [_Step(caller)]
        for step in steps:
            request_context.check_deadline("searching the catalog")  # each relaxed step is another store query
            hits = self._ranked(query, step.filter, policy, options, wanted)
            if len(hits) >= wanted:
                break
        page = hits[options.offset : wanted]
        return GarmentResults(
            group=query.group, category=query.category, color=query.color, top_categories=query.top_categories,
            top_colors=query.top_colors, box=query.box, policy=policy, filter=step.filter, results=page,
            relaxed=bool(step.relaxation), relaxation=step.relaxation,
        )  # fmt: skip

    def _ranked(
        self, query: _Query, applied: SearchFilter, policy: FilterPolicy, options: SearchOptions, wanted: int
    ) -> list[Hit]:
        where = StoreFilter(
            groups=(query.group,), categories=applied.categories, colors=applied.colors, exclude_items=query.exclude
        )
        # Grouping keeps one garment per photo, so it needs more candidates to fill the same page.
        limit = max(self._candidates, wanted * (4 if options.group_by_photo else 2))
        # Prefetch by the visual vector and rescore with the color one; by color only when visual has no weight.
        if self._weights.visual > 0 or query.garment.color_vector is None:
            using, vector = VISUAL, query.garment.embedding
        else:
            using, vector = COLOR, query.garment.color_vector
        candidates = self._store.candidates(vector, using, where, limit)
        if policy is FilterPolicy.SOFT:
            candidates = merge_candidates(candidates, *self._likeliest(query, applied, where, vector, using, limit))
        hits = rank(query.garment, candidates, policy, self._weights, using)
        if options.min_score is not None:
            hits = [h for h in hits if h.score >= options.min_score]
        if options.group_by_photo:
            hits = _one_per_photo(hits)
        return hits

    def _likeliest(
        self, query: _Query, applied: SearchFilter, where: StoreFilter, vector, using: str, limit: int
    ) -> list[list[Candidate]]:
        """SOFT's second prefetch: the nearest garments within the likeliest categories and colors (as far as the
        caller's filter allows), so that the ranking sees them even when few are among the visually nearest."""
        categories, colors = likeliest_labels(query.garment, self._weights)
        if applied.categories:
            categories = tuple(c for c in categories if c in applied.categories)
        if applied.colors:
            colors = tuple(c for c in colors if c in applied.colors)
        if not categories or not colors:
            return []
        likely = replace(where, categories=categories, colors=colors)
        return [self._store.candidates(vector, using, likely, limit)]

    def indexed(self) -> int:
        """How many garments the store holds."""
        return self._store.count()


def _one_per_photo(hits: list[Hit]) -> list[Hit]:
    seen: set[str] = set()
    kept = []
    for hit in hits:
        if hit.garment.photo not in seen:
            seen.add(hit.garment.photo)
            kept.append(hit)
    return kept
