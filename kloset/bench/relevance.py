"""`kloset bench relevance`: are the results relevant for a photo the catalog has never seen?

A shopper's photo is almost never in the catalog, and the models never trained on it. So the queries here are
photos the models did not train on (by default the validation photos of the models' split of `--data`), the
catalog is every other photo, and the benchmark refuses to run when a query photo is in the catalog or in the
training data, by id or by content (unseen.py). The catalog is indexed through a temporary `kloset serve` (gRPC Submit,
the queue, the workers, Qdrant Edge: the path `kloset ingest` takes) and every query is a `SearchByImage` call,
as a user's would be: `photo` sends the whole photo (the segmenter finds the garments), `region` sends the
label's polygons. A result is relevant when its labelled category / color equals the query garment's labelled
one. Beside the policies: the classifier's own accuracy on the same garments (what a filter on its prediction
can reach) and the original project's method (its HSV histogram scan inside the predicted category and color
folder). A near-duplicate check (a new view of a catalog photo must find its garment first) runs on the same
stack.
"""

import math
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kloset.bench.hsv_baseline import HistogramFolders, hsv_histogram
from kloset.bench.retrieval import Truth, masked_crop, view_regions
from kloset.bench.unseen import Photo, split
from kloset.bench.views import MAX_PIXELS, make_view
from kloset.core.errors import InvalidInput
from kloset.core.garments.folders import CatalogPhoto
from kloset.core.garments.images import decode_image
from kloset.core.garments.regions import Region
from kloset.core.index.ranking import FilterPolicy

TOP_K = 10
MODES = ("photo", "region")
@dataclass(frozen=True)
class RelevanceBench:
    data: Path
    queries: Path | None = None  # None: the models' validation photos of `data`
    validation_percent: int = 15  # the models' split (model.json)
    trained_on_extras: bool = True  # the attribute model also trained on data/queries/ (tag-only photos)
    limit: int | None = None  # only the first N query photos
    near_duplicates: int = 100  # catalog photos re-viewed for the near-duplicate check
    seed: int = 0
    timeout_s: float = 3600.0


# --- scoring one result list ---


@dataclass
class Scores:
    """One configuration's per-garment outcomes (a garment the search did not return a list for counts 0)."""

    category: list[float] = field(default_factory=list)
    color: list[float] = field(default_factory=list)
    both: list[float] = field(default_factory=list)
    ndcg: list[float] = field(default_factory=list)
    any_both: list[float] = field(default_factory=list)
    short_lists: int = 0
    missed: int = 0  # garments the search returned no list for (the segmenter did not find their group)
    seconds: list[float] = field(default_factory=list)

    def add(self, truth: Truth, results: Sequence[tuple[str, str]], ideal: Sequence[int]) -> None:
        """results: (category, color) of each hit, best first; ideal: the best gains the catalog allows."""
        top = list(results[:TOP_K])
        self.short_lists += len(top) < TOP_K
        gains = [(c == truth.category) + (k == truth.color) for c, k in top]
        self.category.append(sum(c == truth.category for c, _ in top) / TOP_K)
        self.color.append(sum(k == truth.color for _, k in top) / TOP_K)
        self.both.append(sum(g == 2 for g in gains) / TOP_K)
        self.any_both.append(float(any(g == 2 for g in gains)))
        self.ndcg.append(ndcg(gains, ideal))

    def miss(self) -> None:
        self.missed += 1
        for figures in (self.category, self.color, self.both, self.ndcg, self.any_both):
            figures.append(0.0)

    def summary(self) -> dict:
        return {
            "category_precision_at_10": _mean(self.category),
            "color_precision_at_10": _mean(self.color),
            "both_precision_at_10": _mean(self.both),
            "ndcg_at_10": _mean(self.ndcg),
            "any_both_at_10": _mean(self.any_both),
            "short_lists": self.short_lists,
            "ms_per_query": round(1000 * float(np.median(self.seconds)), 1) if self.seconds else 0.0,
        }


def ndcg(gains: Sequence[int], ideal: Sequence[int]) -> float:
    """nDCG@10 with gain 2 for a result right on both labels and 1 for one; ideal: the catalog's best list."""
    best = _dcg(sorted(ideal, reverse=True)[:TOP_K])
    return _dcg(gains) / best if best > 0 else 0.0


def _dcg(gains: Sequence[int]) -> float:
    return sum(g / math.log2(rank + 2) for rank, g in enumerate(gains[:TOP_K]))


def ideal_gains(truth: Truth, catalog: Sequence[Truth]) -> list[int]:
    """The gains of the best list the catalog allows for this garment (its group's garments only)."""
    gains = [(t.category == truth.category) + (t.color == truth.color) for t in catalog if t.group == truth.group]
    return sorted(gains, reverse=True)[:TOP_K]


def _mean(values: Sequence[float]) -> float:
    return round(float(np.mean(values)), 4) if values else 0.0


# --- running it on a temporary kloset serve ---


@dataclass
class Answer:
    """What one SearchByImage said about one query garment."""

    category: str
    color: str
    results: list[tuple[str, str, str]]  # (item_id, category, color) best first
    box: tuple[float, float, float, float] | None


def run_relevance_benchmark(bench: RelevanceBench, log: Callable[[str], None]) -> dict:
    """Split, check, index the catalog through `kloset serve`, query it, and return the JSON figures."""
    from kloset.bench.stack import TemporaryStack
    from kloset.core.config import Role

    catalog, queries, left_out = split(bench)
    truths = [t for p in catalog for t, _ in p.garments]
    log(f"{len(queries)} query photos ({sum(len(p.garments) for p in queries)} garments) against a catalog of "
        f"{len(catalog)} photos ({len(truths)} garments)")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="kloset-bench-relevance-") as tmp:
        with TemporaryStack(Path(tmp) / "stack") as stack:
            indexed = index_catalog(stack.addr(Role.INGEST), stack.addr(Role.SEARCH), catalog, bench.timeout_s, log)
            log("querying")
            answers = query_all(stack.addr(Role.SEARCH), queries, log)
            log("near-duplicates")
            near = near_duplicates(stack.addr(Role.SEARCH), catalog, bench.near_duplicates, bench.seed)
        folders = HistogramFolders(Path(tmp) / "folders")
        write_folders(catalog, folders)
        labels = {t.item_id: t for t in truths}
        baseline = {mode: original_method(folders, queries, answers, mode, labels) for mode in MODES}
    result = figures(indexed, queries, truths, answers, baseline, near, bench)
    result["details"]["queries_left_out_as_seen"] = left_out
    return result


def index_catalog(ingest_addr: str, search_addr: str, catalog: Sequence[Photo], timeout_s: float, log) -> int:
    """Submit the catalog photos as `kloset ingest` does, wait until the queue drains, return garments indexed."""
    import grpc

    from kloset.client.submission import submit_photo
    from kloset.v1 import ingest_pb2, ingest_pb2_grpc, search_pb2, search_pb2_grpc

    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(ingest_addr) as channel:
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        log(f"indexing {len(catalog)} catalog photos")
        photos = [CatalogPhoto(p.path, p.label) for p in catalog]
        with ThreadPoolExecutor(4) as pool:  # as many submitters as `kloset ingest`
            outcomes = list(pool.map(lambda photo: submit_photo(stub, photo, "", deadline), photos))
        failed = [o for o in outcomes if not isinstance(o, ingest_pb2.SubmitResponse)]
        if failed:
            raise InvalidInput(f"{len(failed)} catalog photos were refused, e.g. {failed[0]}")
        while (stats := stub.GetQueueStats(ingest_pb2.GetQueueStatsRequest(), timeout=30)).queued + stats.pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the catalog was not indexed in {timeout_s:.0f} s")
            time.sleep(0.5)
    with grpc.insecure_channel(search_addr) as channel:
        indexed = search_pb2_grpc.SearchServiceStub(channel).GetIndexStats(search_pb2.GetIndexStatsRequest()).indexed
    expected = sum(len(p.garments) for p in catalog)
    if indexed != expected:
        raise InvalidInput(f"the catalog holds {indexed} garments, {expected} were submitted")
    return int(indexed)


def _search(stub, image: bytes, regions: Sequence[Region], policy: FilterPolicy) -> tuple[list, float]:
    from kloset.services.convert import policy_to_proto, regions_to_proto
    from kloset.v1 import search_pb2

    request = search_pb2.SearchByImageRequest(
        image=image, garments=regions_to_proto(list(regions)), top_k=TOP_K,
        options=search_pb2.SearchOptions(policy=policy_to_proto(policy)),
    )  # fmt: skip
    started = time.perf_counter()
    response = stub.SearchByImage(request, timeout=120)
    return list(response.garments), time.perf_counter() - started


def _answer(garment) -> Answer:
    box = (garment.box.x, garment.box.y, garment.box.width, garment.box.height) if garment.HasField("box") else None
    hits = [(h.item_id, h.category, h.color) for h in garment.results]
    return Answer(garment.category, garment.color, hits, box)


def _group_of(value: int) -> str:
    from kloset.v1 import garment_pb2

    return garment_pb2.GarmentGroup.Name(value).removeprefix("GARMENT_GROUP_").lower()


def query_all(search_addr: str, queries: Sequence[Photo], log) -> dict:
    """answers[mode][policy][item_id] -> Answer (absent: no list for that garment); seconds[mode][policy]."""
    import grpc

    from kloset.v1 import search_pb2_grpc

    answers = {mode: {p.value: {} for p in FilterPolicy} for mode in MODES}
    seconds = {mode: {p.value: [] for p in FilterPolicy} for mode in MODES}
    with grpc.insecure_channel(search_addr, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        stub = search_pb2_grpc.SearchServiceStub(channel)
        for count, photo in enumerate(queries, start=1):
            for policy in FilterPolicy:
                garments, took = _search(stub, photo.image, [], policy)
                seconds["photo"][policy.value].append(took)
                by_group = {_group_of(g.group): g for g in garments}
                for truth, _ in photo.garments:
                    if truth.group.value in by_group:
                        answers["photo"][policy.value][truth.item_id] = _answer(by_group[truth.group.value])
                garments, took = _search(stub, photo.image, [g.region for _, g in photo.garments], policy)
                seconds["region"][policy.value].append(took / len(photo.garments))
                for (truth, _), garment in zip(photo.garments, garments, strict=True):
                    answers["region"][policy.value][truth.item_id] = _answer(garment)
            if count % 20 == 0:
                log(f"  {count}/{len(queries)} query photos")
    return {"answers": answers, "seconds": seconds}


def near_duplicates(search_addr: str, catalog: Sequence[Photo], count: int, seed: int) -> dict:
    """A seeded new view (views.make_view) of `count` catalog photos, searched under the default policy with the
    garments' polygons moved into the view and from the whole view: is the garment itself the first result?"""
    import grpc

    from kloset.v1 import search_pb2_grpc

    chosen = sorted(np.random.default_rng(seed).permutation(len(catalog))[:count])
    ranks: dict[str, list[int]] = {mode: [] for mode in MODES}
    with grpc.insecure_channel(search_addr, options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        stub = search_pb2_grpc.SearchServiceStub(channel)
        for index in chosen:
            photo = catalog[int(index)]
            polygons = [p for _, g in photo.garments for p in g.region.polygons]
            view, moved, _ = make_view(photo.image, polygons, seed * 1_000_003 + int(index))
            regions, kept = view_regions(photo.garments, moved)
            if not kept:
                continue
            by_region, _ = _search(stub, view, regions, FilterPolicy.SOFT)
            by_photo, _ = _search(stub, view, [], FilterPolicy.SOFT)
            groups = {_group_of(g.group): g for g in by_photo}
            for truth, garment in zip(kept, by_region, strict=True):
                ranks["region"].append(_rank(truth.item_id, garment))
                found = groups.get(truth.group.value)
                ranks["photo"].append(_rank(truth.item_id, found) if found is not None else 0)
    return {
        mode: {"n": len(r), "recall_at_1": _mean([x == 1 for x in r]), "recall_at_10": _mean([x > 0 for x in r])}
        for mode, r in ranks.items()
    }


def _rank(item_id: str, garment) -> int:
    found = [h.item_id for h in garment.results]
    return found.index(item_id) + 1 if item_id in found else 0


# --- the original project's method ---


def write_folders(catalog: Sequence[Photo], folders: HistogramFolders) -> None:
    """The original's catalog: each garment's polygon crop in the folder of its labelled category and color."""
    for photo in catalog:
        pixels = decode_image(photo.image, MAX_PIXELS)
        for truth, garment in photo.garments:
            crop, mask = masked_crop(pixels, garment.region)
            folders.write(truth.item_id, truth.category, truth.color, crop, mask)


def original_method(
    folders: HistogramFolders, queries: Sequence[Photo], run: dict, mode: str, labels: dict[str, Truth]
) -> Scores:
    """The original's search with kloset's models: the query garment's HSV histogram compared with every file of
    the folder of its predicted category and color (no relaxation: a small folder gives a short list). The
    prediction and the query crop are the ones the `soft` answers carried: polygon, or the segmenter's box."""
    answers = run["answers"][mode][FilterPolicy.SOFT.value]
    catalog = list(labels.values())
    scores = Scores()
    for photo in queries:
        pixels = decode_image(photo.image, MAX_PIXELS)
        for truth, garment in photo.garments:
            answer = answers.get(truth.item_id)
            if answer is None:
                scores.miss()
                continue
            if mode == "region":
                crop, mask = masked_crop(pixels, garment.region)
            else:
                x, y, w, h = (round(v) for v in answer.box or (0, 0, pixels.shape[1], pixels.shape[0]))
                crop, mask = pixels[y : y + max(h, 1), x : x + max(w, 1)], None
            started = time.perf_counter()
            found = folders.search(hsv_histogram(crop, mask), [answer.category], [answer.color], TOP_K)
            scores.seconds.append(time.perf_counter() - started)
            hits = [(labels[item].category, labels[item].color) for item, _ in found]
            scores.add(truth, hits, ideal_gains(truth, catalog))
    return scores


# --- the figures ---


def figures(
    indexed: int, queries: Sequence[Photo], catalog: Sequence[Truth], run: dict, baseline: dict, near: dict,
    bench: RelevanceBench,
) -> dict:  # fmt: skip
    """The JSON of `kloset bench relevance --json` (keys fixed by issue 16)."""
    truths = [t for p in queries for t, _ in p.garments]
    ideal = {t.item_id: ideal_gains(t, catalog) for t in truths}
    result: dict = {"n_catalog": indexed, "n_queries": len(truths)}
    classifier: dict = {}
    for mode in MODES:
        result[mode] = {}
        for policy in FilterPolicy:
            scores = Scores(seconds=run["seconds"][mode][policy.value])
            answers = run["answers"][mode][policy.value]
            for truth in truths:
                answer = answers.get(truth.item_id)
                if answer is None:
                    scores.miss()
                else:
                    scores.add(truth, [(c, k) for _, c, k in answer.results], ideal[truth.item_id])
            result[mode][policy.value] = scores.summary()
        predicted = run["answers"][mode][FilterPolicy.SOFT.value]
        classifier[mode] = {
            "category": _mean([_predicted(predicted, t, "category") == t.category for t in truths]),
            "color": _mean([_predicted(predicted, t, "color") == t.color for t in truths]),
            "both": _mean([_right(predicted, t) for t in truths]),
        }
    result["classifier"] = classifier
    result["baseline"] = {mode: scores.summary() for mode, scores in baseline.items()}
    result["near_duplicate"] = near
    missed = {mode: sum(t.item_id not in run["answers"][mode]["soft"] for t in truths) for mode in MODES}
    result["details"] = {
        "top_k": TOP_K,
        "queries": str(bench.queries) if bench.queries else f"validation photos of {bench.data.name}",
        "query_photos": len(queries),
        "garments_without_a_list": missed,  # counted as 0 in every precision (photo: the segmenter missed them)
        "query_categories": dict(Counter(t.category for t in truths).most_common()),
        "ms_per_query": "median wall time of one SearchByImage call (photo) or per garment (region), inference "
        "included, over gRPC on this machine",
    }
    return result


def _right(answers: dict[str, Answer], truth: Truth) -> bool:
    category, color = _predicted(answers, truth, "category"), _predicted(answers, truth, "color")
    return category == truth.category and color == truth.color


def _predicted(answers: dict[str, Answer], truth: Truth, what: str) -> str:
    answer = answers.get(truth.item_id)
    return "" if answer is None else getattr(answer, what)
