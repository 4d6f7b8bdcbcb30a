"""`kloset bench store`: filtered and unfiltered top-10 latency and recall@10 against exact search, per backend.

The catalog is synthetic but shaped like kloset's: 1,280-d non-negative embeddings (pooled ReLU features) in
clusters of similar garments, each cluster of one category (the categories as unevenly common as in K-Fashion),
colors drawn per garment. A query is a new view of a catalog garment (its vector with fresh noise) filtered the
way search filters: by its category, by category and color, or not at all (and by group, which is what search by
item asks under the default soft policy). Recall@10 is the share of the exact top 10 that the indexed search
returned, exact search being the same backend with the index bypassed.
"""

import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kloset.bench.memory import PeakMemory
from kloset.core.errors import KlosetError
from kloset.core.garments.color import COLOR_VECTOR_DIM
from kloset.core.garments.labels import CATEGORIES, CATEGORY_GROUP, COLORS, Group
from kloset.core.index.edge.store import EdgeGarmentStore
from kloset.core.index.edge.tuning import EdgeTuning
from kloset.core.index.qdrant_store import QdrantGarmentStore
from kloset.core.index.store import VISUAL, CatalogGarment, GarmentStore, StoreFilter
from kloset.core.models.backbone import EMBEDDING_DIM

FILTERS = ("category", "category_color", "none", "group")
_TOP_K = 10
_UPSERT_BATCH = 1000
_CLUSTER_SIZE = 40  # garments per cluster of look-alikes


@dataclass(frozen=True)
class StoreBench:
    sizes: tuple[int, ...]
    queries: int = 200
    local_max: int = 10_000
    url: str | None = None
    seed: int = 0
    tuning: EdgeTuning = field(default_factory=EdgeTuning)


class SyntheticCatalog:
    """Garments whose vectors, labels and look-alike clusters resemble a real catalog's (see module doc)."""

    def __init__(self, n: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        clusters = max(1, n // _CLUSTER_SIZE)
        weights = 1.0 / np.arange(1, len(CATEGORIES) + 1)  # a few categories common, most rare
        self.cluster_category = rng.choice(len(CATEGORIES), size=clusters, p=weights / weights.sum())
        self.centroids = (rng.gamma(0.6, 1.0, size=(clusters, EMBEDDING_DIM))).astype(np.float32)
        self.cluster = rng.integers(clusters, size=n)
        color_weights = 1.0 / np.arange(1, len(COLORS) + 1) ** 0.8
        self.color = rng.choice(len(COLORS), size=n, p=color_weights / color_weights.sum())
        self._rng = rng
        self.n = n

    def vectors(self, index: np.ndarray) -> np.ndarray:
        """Each garment's embedding: its cluster's centroid, each feature scaled by its own noise."""
        noise = self._rng.lognormal(0.0, 0.5, size=(len(index), EMBEDDING_DIM)).astype(np.float32)
        return self.centroids[self.cluster[index]] * noise

    def garments(self, start: int, stop: int) -> list[CatalogGarment]:
        index = np.arange(start, stop)
        visual = self.vectors(index)
        color = self._rng.random((len(index), COLOR_VECTOR_DIM), dtype=np.float32)
        out = []
        for row, i in enumerate(index):
            category = CATEGORIES[self.cluster_category[self.cluster[i]]]
            group = CATEGORY_GROUP[category]
            out.append(CatalogGarment(
                item_id=f"synthetic/{i}/{group.value}", group=group, category=category,
                color=COLORS[self.color[i]], source="synthetic", model_version="bench", embedding=visual[row],
                color_vector=color[row], photo_id=f"synthetic/{i}",
            ))  # fmt: skip
        return out

    def queries(self, count: int, below: int) -> Iterator[tuple[np.ndarray, dict[str, StoreFilter]]]:
        """New views of catalog garments (among the first `below`), with the filters search would apply."""
        picks = self._rng.integers(below, size=count)
        vectors = self.vectors(picks)
        for vector, i in zip(vectors, picks, strict=True):
            category = CATEGORIES[self.cluster_category[self.cluster[i]]]
            group: Group = CATEGORY_GROUP[category]
            yield (
                vector,
                {
                    "category": StoreFilter(groups=(group,), categories=(category,)),
                    "category_color": StoreFilter(
                        groups=(group,), categories=(category,), colors=(COLORS[self.color[i]],)
                    ),
                    "none": StoreFilter(),
                    "group": StoreFilter(groups=(group,)),
                },
            )


def _timed(fn: Callable[[], list]) -> tuple[float, list]:
    started = time.perf_counter()
    found = fn()
    return (time.perf_counter() - started) * 1000, found


def measure(store: GarmentStore, catalog: SyntheticCatalog, size: int, queries: int) -> dict:
    """p50/p99 of indexed top-10 search and its recall@10 against exact search, per filter."""
    times: dict[str, list[float]] = {f: [] for f in FILTERS}
    recall: dict[str, list[float]] = {f: [] for f in FILTERS}
    for vector, filters in catalog.queries(queries, size):
        for name, where in filters.items():
            ms, found = _timed(lambda v=vector, w=where: store.candidates(v, VISUAL, w, _TOP_K))
            exact = store.candidates(vector, VISUAL, where, _TOP_K, exact=True)
            times[name].append(ms)
            if exact:
                truth = {c.garment.item_id for c in exact}
                recall[name].append(len(truth & {c.garment.item_id for c in found}) / len(truth))
    return {
        name: {
            "p50_ms": round(float(np.percentile(times[name], 50)), 3),
            "p99_ms": round(float(np.percentile(times[name], 99)), 3),
            "recall_at_10": round(float(np.mean(recall[name])), 4) if recall[name] else None,
        }
        for name in FILTERS
    }


def _fill(store: GarmentStore, catalog: SyntheticCatalog, start: int, stop: int) -> float:
    """Upsert garments [start, stop) in batches; returns points per second."""
    started = time.perf_counter()
    for first in range(start, stop, _UPSERT_BATCH):
        store.upsert(catalog.garments(first, min(stop, first + _UPSERT_BATCH)))
    return (stop - start) / max(time.perf_counter() - started, 1e-9)


def _searches_while(store: GarmentStore, catalog: SyntheticCatalog, below: int, work: Callable[[], object]) -> dict:
    """Run work (the optimize) while a thread searches by category as a client would, to show searches keep
    answering throughout it: how many answered, their p99 and slowest, and the errors."""
    done = threading.Event()
    times: list[float] = []
    errors: list[str] = []

    def search() -> None:
        while not done.is_set():
            vector, filters = next(catalog.queries(1, below))  # one at a time: a batch would hold its vectors
            try:
                where = filters["category"]
                times.append(_timed(lambda v=vector, w=where: store.candidates(v, VISUAL, w, _TOP_K))[0])
            except KlosetError as exc:
                errors.append(str(exc))
            # a probe, a query a second: before the first optimize a search scans every garment exactly (a second
            # at 1M), and a client searching flat out would take a core from the build it is measuring
            done.wait(1.0)

    thread = threading.Thread(target=search, name="bench-search", daemon=True)
    thread.start()
    try:
        work()
    finally:
        done.set()
        thread.join()
    return {
        "answered": len(times),
        "p99_ms": round(float(np.percentile(times, 99)), 3) if times else None,
        "max_ms": round(max(times), 3) if times else None,
        "errors": len(errors),
    }


def _grow_and_measure(
    name: str, store: GarmentStore, bench: StoreBench, sizes: tuple[int, ...], log: Callable[[str], None],
    catalog: SyntheticCatalog, memory: PeakMemory,
) -> dict[int, dict]:  # fmt: skip
    """Grow one catalog through the sizes, optimizing after each bulk load as kloset serve does when quiet."""
    out: dict[int, dict] = {}
    loaded = 0
    for size in sizes:
        rate = _fill(store, catalog, loaded, size)
        loaded = size
        started = time.perf_counter()
        during = _searches_while(store, catalog, size, store.optimize)
        optimize_s = time.perf_counter() - started
        log(f"{name}: {size} points, {rate:.0f} upserts/s, optimize {optimize_s:.1f} s; querying")
        figures = measure(store, catalog, size, bench.queries)
        figures["upserts_per_s"] = round(rate)
        figures["optimize_s"] = round(optimize_s, 1)
        figures["searches_during_optimize"] = during
        memory.sample()
        figures["peak_memory_mb"] = memory.peak_mb  # the peak so far: loading and optimizing up to this size
        out[size] = figures
    return out


def _measure_backend(
    name: str, open_store: Callable[[], GarmentStore], bench: StoreBench, sizes: tuple[int, ...],
    log: Callable[[str], None],
) -> dict[int, dict]:  # fmt: skip
    """The catalog is made before the memory baseline, so its copy of the vectors is not counted as the store's."""
    catalog = SyntheticCatalog(max(sizes), bench.seed)
    with PeakMemory() as memory:
        store = open_store()
        try:
            return _grow_and_measure(name, store, bench, sizes, log, catalog, memory)
        finally:
            store.close()


def run_store_benchmark(bench: StoreBench, log: Callable[[str], None] = lambda line: None) -> dict:
    """The figures `kloset bench store --json` prints; `backends` holds the largest size, `by_points` each."""
    sizes = tuple(sorted(set(bench.sizes)))
    by_backend: dict[str, dict[int, dict]] = {}
    with tempfile.TemporaryDirectory(prefix="kloset-bench-store-") as tmp:
        by_backend["edge"] = _measure_backend(
            "edge",
            lambda: EdgeGarmentStore.open(
                path=f"{tmp}/edge", dim=EMBEDDING_DIM, color_dim=COLOR_VECTOR_DIM, tuning=bench.tuning
            ),
            bench, sizes, log,
        )  # fmt: skip
        local_sizes = tuple(s for s in sizes if s <= bench.local_max)
        if local_sizes:
            by_backend["local"] = _measure_backend(
                "local",
                lambda: QdrantGarmentStore.open(url=None, api_key=None, path=f"{tmp}/local", collection="bench",
                                                dim=EMBEDDING_DIM, color_dim=COLOR_VECTOR_DIM),
                bench, local_sizes, log,
            )  # fmt: skip
        if bench.url:
            # a server holds the store in its own process: peak_memory_mb is only this client's share
            by_backend["server"] = _measure_backend(
                "server",
                lambda: QdrantGarmentStore.open(url=bench.url, api_key=None, path="",
                                                collection=f"bench-{os.getpid()}", dim=EMBEDDING_DIM,
                                                color_dim=COLOR_VECTOR_DIM),
                bench, sizes, log,
            )  # fmt: skip
    largest = sizes[-1]
    backends = {
        name: figures.get(largest) or {"skipped": f"measured up to {max(figures)} points only (--local-max): "
                                                  "local mode is brute force in Python"}
        for name, figures in by_backend.items()
    }  # fmt: skip
    if "local" not in by_backend:
        backends["local"] = {"skipped": f"local mode measured only up to --local-max={bench.local_max} points"}
    return {
        "points": largest,
        "backends": backends,
        "by_points": {str(size): {name: f[size] for name, f in by_backend.items() if size in f} for size in sizes},
        "details": {
            "dim": EMBEDDING_DIM, "top_k": _TOP_K, "queries_per_filter": bench.queries, "seed": bench.seed,
            "tuning": bench.tuning.__dict__, "catalog": "synthetic: clustered non-negative 1280-d, Zipf categories",
        },
    }  # fmt: skip


def store_table(figures: dict) -> str:
    """The markdown of docs/benchmarks.md's store section."""
    from kloset.bench.document import markdown_table, stamp

    rows = []
    for size, backends in figures["by_points"].items():
        for name, f in backends.items():
            for flt in FILTERS:
                s = f[flt]
                rows.append([int(size), name, flt, s["p50_ms"], s["p99_ms"], s["recall_at_10"]])
    build = [[int(size), name, f["upserts_per_s"], f["optimize_s"], f.get("peak_memory_mb", "")]
             for size, backends in figures["by_points"].items() for name, f in backends.items()]  # fmt: skip
    return "\n\n".join([
        f"## Store: `kloset bench store --points {figures['points']}`\n\n{stamp()}. Top-{figures['details']['top_k']}"
        f" by the visual vector, {figures['details']['queries_per_filter']} queries per filter; recall@10 against "
        "exact search on the same backend. Catalog: " + figures["details"]["catalog"] + ".",
        markdown_table(["points", "backend", "filter", "p50 ms", "p99 ms", "recall@10"], rows),
        markdown_table(["points", "backend", "upserts/s", "optimize s (child process)", "peak memory MB (anonymous)"],
                       build),
        "![store latency and recall](benchmarks/store.png)",
    ])  # fmt: skip


def save_store_plot(figures: dict, path: Path) -> Path:
    from kloset.bench.document import pyplot, save_figure

    plt = pyplot()

    fig, (left, right, memory) = plt.subplots(1, 3, figsize=(18, 5))
    styles = {"edge": "-o", "local": "--s", "server": ":^"}  # local mode: squares, measured only while small
    colors = dict(zip(FILTERS, plt.get_cmap("tab10").colors, strict=False))
    for backend in ("edge", "local", "server"):
        sizes = [int(s) for s, b in figures["by_points"].items() if backend in b]
        if not sizes:
            continue
        for flt in FILTERS:
            series = [figures["by_points"][str(s)][backend][flt] for s in sizes]
            label = f"{backend}, {flt.replace('_', ' + ')}"
            left.plot(sizes, [x["p99_ms"] for x in series], styles[backend], color=colors[flt], label=label)
            right.plot(sizes, [x["recall_at_10"] for x in series], styles[backend], color=colors[flt], label=label)
        peaks = [figures["by_points"][str(s)][backend].get("peak_memory_mb") for s in sizes]
        if all(peak is not None for peak in peaks):
            memory.plot(sizes, peaks, styles[backend], color="black", label=backend)
    _target(left, 20, "target: filtered p99 ≤ 20 ms")
    left.set(xscale="log", yscale="log", xlabel="catalog garments", ylabel="p99 ms, top-10",
             title="Query latency (p99)")  # fmt: skip
    _target(right, 0.95, "target: recall@10 ≥ 0.95")
    right.set(xscale="log", xlabel="catalog garments", ylabel="recall@10 vs exact search", title="Recall@10",
              ylim=(min(0.9, right.get_ylim()[0]), 1.005))  # fmt: skip
    _target(memory, 4096, "target at 1M: ≤ 4,096 MB")
    memory.set(xscale="log", xlabel="catalog garments", ylabel="MB (anonymous, store + optimize child)",
               title="Peak memory", ylim=(0, None))  # fmt: skip
    for ax in (left, right, memory):
        ax.grid(alpha=0.3)
    left.legend(fontsize=7, ncol=2)
    memory.legend(fontsize=7)
    fig.suptitle("kloset bench store: Qdrant Edge (solid, circles) vs qdrant-client local mode (dashed, squares)")
    return save_figure(fig, path)


def _target(ax, value: float, label: str) -> None:
    ax.axhline(value, color="gray", linewidth=1, linestyle=":")
    ax.annotate(label, (0.02, value), xycoords=("axes fraction", "data"), fontsize=8, va="bottom", color="dimgray")
