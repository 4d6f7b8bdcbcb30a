"""`kloset bench retrieval`: does search find the very garment in a new view of its photo, and at what cost?

Every 상의/하의 garment of a K-Fashion folder goes into a fresh temporary collection (the user's catalog is never
touched). Each is then queried with a seeded new view of its photo (views.make_view), once with its polygon and
once from the whole photo (the segmenter finds the garments), under each filter policy and each vector choice.
Beside it runs the original project's method: OpenCV HSV histograms of crops kept in category/color folders.
"""

import pickle
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from kloset.bench.hsv_baseline import HistogramFolders, hsv_histogram
from kloset.bench.views import make_view
from kloset.core.classifier import AttributeEngine
from kloset.core.garments.color import COLOR_VECTOR_DIM
from kloset.core.garments.crop import garment_mask
from kloset.core.garments.folders import scan_catalog
from kloset.core.garments.images import decode_image
from kloset.core.garments.kfashion import LabeledGarment, parse_label
from kloset.core.garments.labels import Group, categories_of
from kloset.core.garments.regions import Region
from kloset.core.index.qdrant_store import QdrantGarmentStore
from kloset.core.index.ranking import FilterPolicy, RankingWeights
from kloset.core.index.search import SearchEngine, SearchFilter, SearchOptions
from kloset.core.index.store import CatalogGarment
from kloset.core.models.backbone import EMBEDDING_DIM
from kloset.core.models.predictions import GarmentPrediction

TOP_K = 10
MAX_PIXELS = 100_000_000


@dataclass(frozen=True)
class Truth:
    """A catalog garment as annotated: the answer a query of it should find."""

    item_id: str
    group: Group
    category: str
    color: str


@dataclass
class Query:
    truth: Truth
    region: GarmentPrediction  # classified with the view's polygon
    photo: GarmentPrediction | None  # what the segmenter found for the garment's group in the view, if anything
    region_hist: np.ndarray  # the original method's histogram of the view's polygon crop


@dataclass
class Figures:
    """Accumulates one configuration's per-query outcomes."""

    ranks: list[int] = field(default_factory=list)  # 1-based rank of the right garment in the top-k, 0: absent
    category_precision: list[float] = field(default_factory=list)
    color_precision: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    short_lists: int = 0  # answers with fewer than TOP_K results (every group of the catalog holds more)

    def add(self, truth: Truth, found: Sequence[str], labels: dict[str, Truth], seconds: float) -> None:
        self.ranks.append(found.index(truth.item_id) + 1 if truth.item_id in found else 0)
        self.short_lists += len(found) < TOP_K
        results = [labels[i] for i in found[:TOP_K]]
        self.category_precision.append(sum(r.category == truth.category for r in results) / TOP_K)
        self.color_precision.append(sum(r.color == truth.color for r in results) / TOP_K)
        self.seconds.append(seconds)

    def miss(self, seconds: float = 0.0) -> None:
        """A query that found nothing to search with (the segmenter missed the garment's group)."""
        self.ranks.append(0)
        self.category_precision.append(0.0)
        self.color_precision.append(0.0)
        self.seconds.append(seconds)

    def summary(self, precisions: bool = True) -> dict:
        ranks = np.array(self.ranks)
        found = ranks > 0
        figures = {
            "recall_at_1": _round(np.mean(ranks == 1)),
            "recall_at_10": _round(np.mean(found)),
            # One relevant garment per query, so average precision is 1/rank (0 when outside the top 10).
            "map": _round(np.mean(np.where(found, 1.0 / np.maximum(ranks, 1), 0.0))),
        }
        if precisions:
            figures["category_precision_at_10"] = _round(np.mean(self.category_precision))
            figures["color_precision_at_10"] = _round(np.mean(self.color_precision))
        figures["ms_per_query"] = _round(1000 * float(np.median(self.seconds)) if self.seconds else 0.0, 3)
        return figures


@dataclass
class Catalog:
    photos: list[tuple[Path, bytes, list[tuple[Truth, LabeledGarment]]]]
    labels: dict[str, Truth]


def load_catalog(data: Path, limit: int | None = None) -> Catalog:
    """Every photo with an annotated top or bottom (category and color both known), in file order."""
    photos, labels = [], {}
    for photo in scan_catalog(data).photos[:limit]:
        if photo.label is None:
            continue
        label = parse_label(photo.label.read_bytes())
        garments = []
        for g in label.garments:
            if g.category and g.color:
                truth = Truth(f"{photo.image.stem}/{g.group.value}", g.group, g.category, g.color)
                garments.append((truth, g))
                labels[truth.item_id] = truth
        if garments:
            photos.append((photo.image, photo.image.read_bytes(), garments))
    return Catalog(photos, labels)


def classify_catalog(catalog: Catalog, classifier: AttributeEngine, progress) -> list[CatalogGarment]:
    """Classify and embed each catalog garment by its polygon, keeping its annotated category and color."""
    garments = []
    for image_path, image, labelled in progress(catalog.photos, "catalog"):
        classification = classifier.classify(image, [g.region for _, g in labelled])
        for (truth, _), prediction in zip(labelled, classification.garments, strict=True):
            garments.append(CatalogGarment(
                item_id=truth.item_id, group=truth.group, category=truth.category, color=truth.color,
                source=image_path.name, model_version=classification.model_version, embedding=prediction.embedding,
                color_vector=prediction.color_vector, photo_id=image_path.stem, box=prediction.box,
            ))  # fmt: skip
    return garments


def write_folders(catalog: Catalog, folders: HistogramFolders) -> None:
    """The original's catalog: each garment's crop in the folder of its category and color."""
    for _, image, labelled in catalog.photos:
        pixels = decode_image(image, MAX_PIXELS)
        for truth, garment in labelled:
            crop, mask = masked_crop(pixels, garment.region)
            folders.write(truth.item_id, truth.category, truth.color, crop, mask)


def make_queries(catalog: Catalog, classifier: AttributeEngine, seed: int, progress, timing: dict) -> list[Query]:
    """One seeded new view per catalog photo; each garment in it queried by polygon and from the whole photo."""
    queries = []
    for index, (_, image, garments) in enumerate(progress(catalog.photos, "queries")):
        polygons = [p for _, g in garments for p in g.region.polygons]
        view, moved, _ = make_view(image, polygons, seed * 1_000_003 + index)
        regions, kept = view_regions(garments, moved)
        if not kept:
            continue
        started = time.perf_counter()
        by_region = classifier.classify(view, regions).garments
        timing["region"].append((time.perf_counter() - started) / len(kept))
        started = time.perf_counter()
        by_photo = {p.group: p for p in classifier.classify(view, []).garments}
        timing["photo"].append((time.perf_counter() - started) / len(kept))
        pixels = decode_image(view, MAX_PIXELS)
        for truth, region, prediction in zip(kept, regions, by_region, strict=True):
            crop, mask = masked_crop(pixels, region)
            queries.append(Query(truth, prediction, by_photo.get(truth.group), hsv_histogram(crop, mask)))
    return queries


def view_regions(
    garments: list[tuple[Truth, LabeledGarment]], moved: list[np.ndarray | None]
) -> tuple[list[Region], list[Truth]]:
    """The garments' polygons in the view; a garment the crop cut off entirely is left out."""
    regions, kept, position = [], [], 0
    for truth, labelled in garments:
        count = len(labelled.region.polygons)
        polygons = tuple(p for p in moved[position : position + count] if p is not None)
        position += count
        if polygons:
            regions.append(Region(group=truth.group, polygons=polygons))
            kept.append(truth)
    return regions, kept


def masked_crop(pixels: np.ndarray, region: Region) -> tuple[np.ndarray, np.ndarray]:
    """The garment's bounding box and its mask within it, as the original project cut garments out."""
    mask = garment_mask(pixels.shape[0], pixels.shape[1], region)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return pixels[y0:y1, x0:x1], mask[y0:y1, x0:x1]


def _searched(
    engine: SearchEngine, prediction: GarmentPrediction, policy: FilterPolicy
) -> tuple[list[str], float]:
    started = time.perf_counter()
    answer = engine.search_prediction(prediction, SearchFilter(), TOP_K, SearchOptions(policy=policy))
    return [h.garment.item_id for h in answer.results], time.perf_counter() - started


def evaluate(
    engine: SearchEngine, queries: Sequence[Query], labels: dict[str, Truth], policy: FilterPolicy, mode: str
) -> Figures:
    """Search each query garment (mode "region" or "photo") under one policy and score the answers."""
    figures = Figures()
    for query in queries:
        prediction = query.region if mode == "region" else query.photo
        if prediction is None:
            figures.miss()
            continue
        found, seconds = _searched(engine, prediction, policy)
        figures.add(query.truth, found, labels, seconds)
    return figures


def baseline(
    folders: HistogramFolders, queries: Sequence[Query], labels: dict[str, Truth], group_only: bool, timed: int
) -> Figures:
    """The original method: histograms compared within the query's labelled category and color folder (or its
    whole group). Recall comes from histograms held in memory (the same ranking), time from the first `timed`
    queries reading every file of their folders, as the original did."""
    figures = Figures()
    for query in queries:
        found = folders.search_cached(query.region_hist, *_folders_of(query.truth, group_only), TOP_K)
        figures.add(query.truth, [item for item, _ in found], labels, 0.0)
    figures.seconds = []
    for query in queries[:timed]:
        started = time.perf_counter()
        folders.search(query.region_hist, *_folders_of(query.truth, group_only), TOP_K)
        figures.seconds.append(time.perf_counter() - started)
    return figures


def _folders_of(truth: Truth, group_only: bool) -> tuple[list[str], list[str] | None]:
    """The folders the original would read: the labelled category/color, or every category of the group."""
    if group_only:
        return list(categories_of(truth.group)), None
    return [truth.category], [truth.color]


def _round(value: float, digits: int = 4) -> float:
    return round(float(value), digits)


@dataclass(frozen=True)
class BenchSettings:
    weights: RankingWeights
    candidates: int
    default_policy: FilterPolicy
    seed: int = 0
    limit: int | None = None
    baseline_timed_queries: int = 50


def run_retrieval_benchmark(
    data: Path,
    classifier: AttributeEngine,
    settings: BenchSettings,
    progress: Callable[..., Iterator],
    cache: Path | None = None,
) -> dict:
    """The whole benchmark; returns the JSON figures. A cache file keeps the model's answers between runs that
    differ only in ranking settings (it is recomputed when the data, seed, limit or model version differ)."""
    catalog = load_catalog(data, settings.limit)
    key = (str(data.resolve()), settings.seed, settings.limit, classifier.model_version, classifier.segmenter_version,
           len(catalog.labels))
    cached = _read_cache(cache, key)
    if cached is None:
        timing: dict[str, list[float]] = {"region": [], "photo": []}
        garments = classify_catalog(catalog, classifier, progress)
        queries = make_queries(catalog, classifier, settings.seed, progress, timing)
        _write_cache(cache, key, (garments, queries, timing))
    else:
        garments, queries, timing = cached
    with tempfile.TemporaryDirectory(prefix="kloset-bench-") as tmp:
        store = QdrantGarmentStore.open(url=None, api_key=None, path=f"{tmp}/qdrant", collection="bench",
                                        dim=EMBEDDING_DIM, color_dim=COLOR_VECTOR_DIM)  # fmt: skip
        try:
            store.upsert(garments)
            folders = HistogramFolders(Path(tmp) / "folders")
            write_folders(catalog, folders)
            return _figures(store, folders, catalog, queries, settings, timing)
        finally:
            store.close()


def _read_cache(path: Path | None, key: tuple):
    if path is None or not path.is_file():
        return None
    with path.open("rb") as f:
        saved_key, value = pickle.load(f)  # our own file, written below; never a user's upload
    return value if saved_key == key else None


def _write_cache(path: Path | None, key: tuple, value) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            pickle.dump((key, value), f)


def _figures(store, folders, catalog: Catalog, queries: list[Query], settings: BenchSettings, timing) -> dict:
    def engine(weights: RankingWeights) -> SearchEngine:
        return SearchEngine(None, store, TOP_K, policy=settings.default_policy, weights=weights,  # type: ignore[arg-type]
                            candidates=settings.candidates)  # fmt: skip

    default = engine(settings.weights)
    labels = catalog.labels
    result: dict = {"n_catalog": store.count(), "n_queries": len(queries)}
    short: dict[str, dict[str, int]] = {}
    for mode in ("region", "photo"):
        runs = {policy.value: evaluate(default, queries, labels, policy, mode) for policy in FilterPolicy}
        result[mode] = {policy: figures.summary() for policy, figures in runs.items()}
        short[mode] = {policy: figures.short_lists for policy, figures in runs.items()}
    vectors = {
        "visual": replace(settings.weights, color=0.0),
        "color": replace(settings.weights, visual=0.0, color=1.0),
        "fused": settings.weights,
    }
    result["by_vector"] = {
        name: evaluate(engine(w), queries, labels, settings.default_policy, "region").summary()
        for name, w in vectors.items()
    }
    timed = settings.baseline_timed_queries
    result["baseline"] = {
        "labelled_filter": baseline(folders, queries, labels, False, timed).summary(precisions=False),
        "group_only": baseline(folders, queries, labels, True, timed).summary(precisions=False),
    }
    result["details"] = {
        "top_k": TOP_K,
        "seed": settings.seed,
        "default_policy": settings.default_policy.value,
        "by_vector_policy": settings.default_policy.value,
        "weights": settings.weights.__dict__,
        "candidates": settings.candidates,
        "photo_queries_with_the_group_found": sum(q.photo is not None for q in queries),
        "short_lists": short,  # result lists shorter than top_k, by query mode and policy
        "inference_ms_per_garment": {k: _round(1000 * float(np.median(v)), 1) if v else 0.0 for k, v in timing.items()},
        "baseline_timed_queries": min(timed, len(queries)),
    }
    return result
