"""`kloset bench search`: search latency and throughput over gRPC against a real `kloset serve`, and the original.

The catalog is the real garments of a K-Fashion folder (classified and embedded by the model, as ingest would)
plus synthetic garments up to --catalog: each a real garment's vectors with noise, keeping its labels, so filters
and neighbourhoods look like a grown catalog's. It is written into the stack's Qdrant Edge folder and optimized
before `kloset serve` starts. Then 1, 4 and 16 concurrent clients search by item (no inference) and by whole
street photo (segmenter, classifier, one search per garment; the server's trailing metadata splits its time into
inference and vector search). Last, a mixed load: 8 clients by photo and 8 by item at once for --mixed-seconds,
each kind's latency reported apart (a cheap call must not wait behind inference). The original project's
method (HSV histograms of every crop file in the query's category/color folder, read at query time) is timed at
the catalog sizes it can reach: the real garments.
"""

import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np

from kloset.bench.hsv_baseline import HistogramFolders, hsv_histogram
from kloset.bench.retrieval import Catalog, load_catalog
from kloset.bench.stack import TemporaryStack
from kloset.core.config import Role, Settings
from kloset.core.index.store import CatalogGarment
from kloset.core.index.stores import open_store
from kloset.v1 import search_pb2, search_pb2_grpc

CLIENTS = (1, 4, 16)
MIXED_CLIENTS = {"by_photo": 8, "by_item": 8}
_UPSERT_BATCH = 1000


@dataclass(frozen=True)
class SearchBench:
    catalog: int = 100_000
    data: Path | None = None
    limit: int | None = None  # photos of data
    item_requests: int = 400  # by item, per concurrency level
    photo_requests: int = 32  # by photo, per concurrency level
    mixed_seconds: float = 60.0  # the mixed load's length; 0 leaves it out
    seed: int = 0


def _synthetic_like(real: list[CatalogGarment], start: int, count: int, seed: int) -> list[CatalogGarment]:
    """Garments start..start+count shaped like the real ones: a real garment's vectors, each feature scaled by
    noise, its labels kept."""
    rng = np.random.default_rng(seed + start)
    out = []
    for j in range(start, start + count):
        base = real[j % len(real)]
        visual = base.embedding * rng.lognormal(0.0, 0.35, base.embedding.shape).astype(np.float32)
        color = base.color_vector * rng.lognormal(0.0, 0.2, base.color_vector.shape).astype(np.float32)
        out.append(CatalogGarment(
            item_id=f"synthetic/{j}/{base.group.value}", group=base.group, category=base.category, color=base.color,
            source="synthetic", model_version=base.model_version, embedding=visual, color_vector=color,
            photo_id=f"synthetic/{j}",
        ))  # fmt: skip
    return out


def _real_garments(bench: SearchBench, settings: Settings, log) -> tuple[list[CatalogGarment], list[bytes], Catalog]:
    """The folder's annotated garments classified by the model, and its photos to query with."""
    from kloset.bench.retrieval import classify_catalog
    from kloset.core.classifier import AttributeEngine
    from kloset.core.models.loading import load_attribute_model, load_segmenter

    catalog = load_catalog(bench.data, bench.limit)
    model = load_attribute_model(settings)
    segmenter = load_segmenter(settings)
    engine = AttributeEngine(model, settings.max_image_pixels, segmenter, settings.max_garments_per_request)
    log(f"classifying the {sum(len(g) for _, _, g in catalog.photos)} garments of {len(catalog.photos)} photos")
    garments = classify_catalog(catalog, engine, lambda items, label: items)
    return garments, [image for _, image, _ in catalog.photos], catalog


def _synthetic_only(bench: SearchBench, root: Path) -> tuple[list[CatalogGarment], list[bytes]]:
    """Without a data folder: garments shaped like the store benchmark's, and sample photos to query with."""
    from kloset.bench.store import SyntheticCatalog
    from kloset.core.garments.sample import write_sample_catalog

    garments = SyntheticCatalog(min(bench.catalog, 2000), bench.seed).garments(0, min(bench.catalog, 2000))
    photos = [p.read_bytes() for p in write_sample_catalog(root / "sample", 8, bench.seed)]
    return garments, photos


def _fill_store(settings: Settings, garments: list[CatalogGarment], synthetic: int, seed: int, log) -> None:
    store = open_store(settings)
    try:
        for first in range(0, len(garments), _UPSERT_BATCH):
            store.upsert(garments[first : first + _UPSERT_BATCH])
        for first in range(0, synthetic, _UPSERT_BATCH):
            store.upsert(_synthetic_like(garments, first, min(_UPSERT_BATCH, synthetic - first), seed))
        log(f"catalog of {store.count()} garments written; building its index")
        store.optimize()
    finally:
        store.close()


def _percentiles(values: list[float]) -> dict:
    return {
        "p50_ms": round(float(np.percentile(values, 50)), 2),
        "p99_ms": round(float(np.percentile(values, 99)), 2),
    }


def _load(addr: str, clients: int, total: int, call: Callable[[search_pb2_grpc.SearchServiceStub, int], dict]) -> dict:
    """`total` requests spread over `clients` threads, each with its own channel, all started together."""
    per_client = max(1, total // clients)
    latencies: list[float] = []
    parts: dict[str, list[float]] = {}
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client(n: int) -> None:
        with grpc.insecure_channel(addr) as channel:
            stub = search_pb2_grpc.SearchServiceStub(channel)
            call(stub, n)  # warm the channel before the clock starts
            start.wait()
            for i in range(per_client):
                began = time.perf_counter()
                try:
                    timings = call(stub, n * per_client + i)
                except grpc.RpcError as exc:
                    with lock:
                        errors.append(exc.code().name)
                    continue
                elapsed = (time.perf_counter() - began) * 1000
                with lock:
                    latencies.append(elapsed)
                    for name, ms in timings.items():
                        parts.setdefault(name, []).append(ms)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    figures = {**_percentiles(latencies), "throughput_rps": round(len(latencies) / wall, 2),
               "requests": len(latencies), "errors": len(errors)}  # fmt: skip
    for name, values in parts.items():
        figures[f"{name}_p50"] = round(float(np.median(values)), 2)
    return figures


def _mixed(addr: str, seconds: float, calls: dict[str, Callable]) -> dict:
    """MIXED_CLIENTS of each kind calling in a loop at once until the time is up; latencies per kind."""
    latencies: dict[str, list[float]] = {kind: [] for kind in calls}
    errors: dict[str, list[str]] = {kind: [] for kind in calls}
    start = threading.Barrier(sum(MIXED_CLIENTS.values()) + 1)
    deadline = [0.0]

    def client(kind: str, n: int) -> None:
        with grpc.insecure_channel(addr) as channel:
            stub = search_pb2_grpc.SearchServiceStub(channel)
            calls[kind](stub, n)
            start.wait()
            i = 0
            while time.perf_counter() < deadline[0]:
                began = time.perf_counter()
                try:
                    calls[kind](stub, n * 1000 + i)
                    latencies[kind].append((time.perf_counter() - began) * 1000)  # list.append: atomic
                except grpc.RpcError as exc:
                    errors[kind].append(exc.code().name)
                i += 1

    threads = [threading.Thread(target=client, args=(kind, n)) for kind, count in MIXED_CLIENTS.items()
               for n in range(count)]  # fmt: skip
    for t in threads:
        t.start()
    deadline[0] = time.perf_counter() + seconds
    start.wait()
    for t in threads:
        t.join()
    return {
        kind: {**_percentiles(latencies[kind]), "clients": MIXED_CLIENTS[kind], "requests": len(latencies[kind]),
               "throughput_rps": round(len(latencies[kind]) / seconds, 2), "errors": len(errors[kind])}
        for kind in calls
    } | {"seconds": seconds}  # fmt: skip


def _by_item(item_ids: list[str]):
    def call(stub, n: int) -> dict:
        stub.SearchByItem(search_pb2.SearchByItemRequest(item_id=item_ids[n % len(item_ids)], top_k=10), timeout=60)
        return {}

    return call


def _by_photo(photos: list[bytes]):
    def call(stub, n: int) -> dict:
        request = search_pb2.SearchByImageRequest(image=photos[n % len(photos)], top_k=10)
        _, rpc = stub.SearchByImage.with_call(request, timeout=120)
        timings = dict(rpc.trailing_metadata() or ())
        return {name.removeprefix("kloset-").replace("-", "_"): float(v) for name, v in timings.items()}

    return call


def original_scan(catalog: Catalog, sizes: tuple[int, ...], queries: int, root: Path) -> dict:
    """The original's query time: every crop file of the query's category/color folder read and histogrammed."""
    from kloset.bench.retrieval import masked_crop
    from kloset.core.garments.images import decode_image

    crops = []
    for _, image, labelled in catalog.photos:
        pixels = decode_image(image, 40_000_000)
        for truth, garment in labelled:
            crops.append((truth, *masked_crop(pixels, garment.region)))
    out = {}
    for size in sorted({min(s, len(crops)) for s in sizes}):
        folders = HistogramFolders(root / f"hsv-{size}")
        for truth, crop, mask in crops[:size]:
            folders.write(truth.item_id, truth.category, truth.color, crop, mask)
        times = []
        for truth, crop, mask in crops[:queries]:
            query = hsv_histogram(crop, mask)
            began = time.perf_counter()
            folders.search(query, [truth.category], [truth.color], 10)
            times.append((time.perf_counter() - began) * 1000)
        out[str(size)] = _percentiles(times)
    return out


def run_search_benchmark(bench: SearchBench, settings: Settings, log: Callable[[str], None] = print) -> dict:
    with tempfile.TemporaryDirectory(prefix="kloset-bench-search-") as tmp:
        root = Path(tmp)
        catalog = None
        if bench.data is not None:
            real, photos, catalog = _real_garments(bench, settings, log)
        else:
            real, photos = _synthetic_only(bench, root)
        real = real[: bench.catalog]
        stack_settings = Settings(data_dir=root / "var")
        _fill_store(stack_settings, real, bench.catalog - len(real), bench.seed, log)
        item_ids = [g.item_id for g in real]
        figures: dict = {"catalog": bench.catalog, "real_garments": len(real),
                         "synthetic_garments": bench.catalog - len(real), "by_item": {}, "by_photo": {}}  # fmt: skip
        log("starting kloset serve")
        with TemporaryStack(root / "var", KLOSET_WORKERS="1") as stack:
            addr = stack.addr(Role.SEARCH)
            for clients in CLIENTS:
                figures["by_item"][str(clients)] = _load(addr, clients, bench.item_requests, _by_item(item_ids))
                log(f"by item, {clients} clients: {figures['by_item'][str(clients)]}")
            for clients in CLIENTS:
                figures["by_photo"][str(clients)] = _load(addr, clients, bench.photo_requests, _by_photo(photos))
                log(f"by photo, {clients} clients: {figures['by_photo'][str(clients)]}")
            if bench.mixed_seconds > 0:
                calls = {"by_photo": _by_photo(photos), "by_item": _by_item(item_ids)}
                figures["mixed"] = _mixed(addr, bench.mixed_seconds, calls)
                log(f"mixed load: {figures['mixed']}")
            figures["serve_rss_mb"] = round(stack.rss_mb())
        if catalog is not None:
            log("timing the original's histogram scan")
            figures["original_hsv"] = original_scan(catalog, (100, 300, len(real)), 10, root)
        figures["details"] = {
            "data": str(bench.data) if bench.data else "synthetic sample",
            "top_k": 10, "clients": list(CLIENTS), "item_requests": bench.item_requests,
            "photo_requests": bench.photo_requests, "store": stack_settings.store_backend.value,
        }  # fmt: skip
    return figures


def search_table(figures: dict) -> str:
    from kloset.bench.document import markdown_table, stamp

    rows = []
    for kind in ("by_item", "by_photo"):
        for clients, f in figures[kind].items():
            rows.append([kind.replace("_", " "), int(clients), f["p50_ms"], f["p99_ms"], f["throughput_rps"],
                         f.get("inference_ms_p50"), f.get("search_ms_p50")])  # fmt: skip
    parts = [
        f"## Search: `kloset bench search --catalog {figures['catalog']}`\n\n{stamp()}. "
        f"{figures['real_garments']} real garments ({figures['details']['data']}) and "
        f"{figures['synthetic_garments']} synthetic ones like them, Qdrant Edge, over gRPC to one `kloset serve` "
        f"(resident memory after the run: {figures['serve_rss_mb']} MB). Top 10.",
        markdown_table(
            ["query", "clients", "p50 ms", "p99 ms", "requests/s", "inference p50 ms", "search p50 ms"], rows
        ),
    ]
    if "mixed" in figures:
        mixed = figures["mixed"]
        rows = [[kind.replace("_", " "), f["clients"], f["p50_ms"], f["p99_ms"], f["throughput_rps"], f["errors"]]
                for kind, f in mixed.items() if kind != "seconds"]  # fmt: skip
        header = ["query", "clients", "p50 ms", "p99 ms", "requests/s", "errors"]
        parts.append(f"Mixed load: both kinds at once for {mixed['seconds']:g} s (calls that run the models have "
                     "their own server threads, KLOSET_MODEL_CALL_THREADS):\n\n" + markdown_table(header, rows))
    if "original_hsv" in figures:
        hsv = [[int(n), f["p50_ms"], f["p99_ms"]] for n, f in figures["original_hsv"].items()]
        parts.append("The original's method (HSV histograms of every crop in the query's category/color folder, "
                     "read at query time), by catalog size:\n\n"
                     + markdown_table(["catalog garments", "p50 ms", "p99 ms"], hsv))  # fmt: skip
    parts.append("![search latency and throughput](benchmarks/search.png)")
    return "\n\n".join(parts)


def save_search_plot(figures: dict, path: Path) -> Path:
    from kloset.bench.document import pyplot, save_figure

    plt = pyplot()

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    for kind, color in (("by_item", "tab:blue"), ("by_photo", "tab:orange")):
        clients = [int(c) for c in figures[kind]]
        series = list(figures[kind].values())
        label = kind.replace("_", " ")
        left.plot(clients, [f["p50_ms"] for f in series], "-o", color=color, label=f"{label}, p50")
        left.plot(clients, [f["p99_ms"] for f in series], "--o", color=color, label=f"{label}, p99")
        right.plot(clients, [f["throughput_rps"] for f in series], "-o", color=color, label=label)
    left.set(xscale="log", yscale="log", xlabel="concurrent clients", ylabel="ms per request",
             title=f"Latency at {figures['catalog']} garments")  # fmt: skip
    right.set(xscale="log", yscale="log", xlabel="concurrent clients", ylabel="requests per second",
              title="Throughput")  # fmt: skip
    for ax in (left, right):
        ax.set_xticks(CLIENTS, [str(c) for c in CLIENTS])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("kloset bench search: one kloset serve, Qdrant Edge, over gRPC")
    return save_figure(fig, path)
