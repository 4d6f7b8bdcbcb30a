"""`kloset bench ...`: each benchmark prints its figures as JSON and writes its section of docs/ (docs/benchmarks.md,
docs/search.md)."""

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from kloset.bench.document import DOCS_DIR
from kloset.client.progress import Progress
from kloset.client.stubs import CommandError
from kloset.core.config import Settings

DEFAULT_BENCH_DATA = Path("../shared/data/ccp")  # the data set beside the repository, as CI lays it out


def _progress(quiet: bool):
    def progress(items: Sequence, label: str) -> Iterator:
        bar = Progress(label, len(items), enabled=not quiet)
        for count, item in enumerate(items, start=1):
            yield item
            bar.update(count)
        bar.close()

    return progress


def register(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser("bench", help="benchmarks that print JSON figures and write docs/benchmarks.md")
    benches = bench.add_subparsers(dest="what", required=True, metavar="BENCHMARK")
    retrieval = benches.add_parser("retrieval", help="search quality on a K-Fashion folder, against the original")
    retrieval.add_argument("--data", type=Path, required=True, help="a K-Fashion folder (images/ + labels/)")
    retrieval.add_argument("--limit", type=int, help="only the first N photos of the folder")
    retrieval.add_argument("--seed", type=int, default=0, help="seed of the query views")
    retrieval.add_argument("--plot", type=Path, help="write the recall / precision plot (PNG) here")
    retrieval.add_argument("--table", type=Path, help="write the figures as a markdown table here")
    retrieval.add_argument(
        "--cache", type=Path, help="keep the model's answers here, for reruns with other ranking settings"
    )
    relevance = benches.add_parser(
        "relevance", help="search relevance for photos the catalog and the models never saw (docs/search.md)"
    )
    relevance.add_argument("--data", type=Path, default=DEFAULT_BENCH_DATA,
                           help="a K-Fashion folder: the catalog and, by default, the queries (its validation "
                           "photos); default ../shared/data/ccp")  # fmt: skip
    relevance.add_argument("--queries", type=Path,
                           help="a K-Fashion folder of query photos, searched against all of --data")  # fmt: skip
    relevance.add_argument("--limit", type=int, help="only the first N query photos")
    relevance.add_argument("--near-duplicates", type=int, default=100,
                           help="catalog photos re-viewed to check near-duplicate recall@1 (default 100)")  # fmt: skip
    relevance.add_argument("--seed", type=int, default=0, help="seed of the near-duplicate views")
    relevance.add_argument("--plot", type=Path, help="write the precision plot (PNG) here")
    relevance.add_argument("--table", type=Path, help="write the figures as a markdown table here")
    store = benches.add_parser("store", help="filtered top-10 latency and recall@10 on each store backend")
    store.add_argument("--points", type=int, default=100_000, help="the largest catalog (default 100000)")
    store.add_argument("--sizes", help="catalog sizes to measure, comma-separated (default 10000,50000,POINTS)")
    store.add_argument("--queries", type=int, default=200, help="queries per filter (default 200)")
    store.add_argument("--local-max", type=int, default=10_000,
                       help="largest catalog for qdrant-client local mode, brute force in Python")  # fmt: skip
    store.add_argument("--url", help="also measure a Qdrant server here (default: none)")
    store.add_argument("--seed", type=int, default=0)
    search_bench = benches.add_parser("search", help="gRPC search latency and throughput on a temporary kloset serve")
    search_bench.add_argument("--catalog", type=int, default=100_000, help="catalog garments (default 100000)")
    search_bench.add_argument("--data", type=Path, help="a K-Fashion folder: its garments and photos (else synthetic)")
    search_bench.add_argument("--limit", type=int, help="only the first N photos of --data")
    search_bench.add_argument("--item-requests", type=int, default=400, help="by item, per concurrency level")
    search_bench.add_argument("--photo-requests", type=int, default=32, help="by photo, per concurrency level")
    search_bench.add_argument("--mixed-seconds", type=float, default=60.0,
                              help="8 photo and 8 item clients at once for this long (0: skip)")  # fmt: skip
    model_bench = benches.add_parser("model", help="the backbone's images/s at batch 1/8/32: the ingest ceiling")
    model_bench.add_argument("--batches", default="1,8,32", help="batch sizes, comma-separated (default 1,8,32)")
    model_bench.add_argument("--seconds", type=float, default=5.0, help="seconds of passes per batch size")
    ingest_bench = benches.add_parser("ingest", help="garments/s end to end on a temporary kloset serve")
    ingest_bench.add_argument("--data", type=Path, required=True, help="a K-Fashion folder (images/ + labels/)")
    ingest_bench.add_argument("--limit", type=int, help="only the first N photos of the folder")
    for parser_ in (retrieval, relevance, store, search_bench, model_bench, ingest_bench):
        parser_.add_argument("--quiet", action="store_true", help="no progress on stderr")
        parser_.add_argument("--json", action="store_true")
    for parser_ in (store, search_bench, model_bench, ingest_bench):
        parser_.add_argument("--docs", type=Path, default=DOCS_DIR,
                             help="where benchmarks.md and its plots go (default: the repository's docs/)")  # fmt: skip
    retrieval.set_defaults(run=_retrieval)
    relevance.set_defaults(run=_relevance)
    store.set_defaults(run=_store)
    search_bench.set_defaults(run=_search)
    model_bench.set_defaults(run=_model)
    ingest_bench.set_defaults(run=_ingest)


def _sizes(args) -> tuple[int, ...]:
    if args.points < 100:
        raise CommandError("--points must be at least 100")
    if not args.sizes:
        return (*(s for s in (10_000, 50_000) if s < args.points), args.points)
    try:
        sizes = tuple(int(part) for part in args.sizes.split(",") if part.strip())
    except ValueError:
        raise CommandError(f"--sizes must be comma-separated numbers, not {args.sizes!r}") from None
    if not sizes or min(sizes) < 100 or max(sizes) > args.points:
        raise CommandError(f"--sizes must lie between 100 and --points ({args.points})")
    return sizes


def _store(args, settings: Settings) -> int:
    from kloset.bench.document import update_section
    from kloset.bench.store import StoreBench, run_store_benchmark, save_store_plot, store_table

    if args.queries < 1:
        raise CommandError("--queries must be at least 1")
    bench = StoreBench(sizes=_sizes(args), queries=args.queries, local_max=args.local_max, url=args.url,
                       seed=args.seed, tuning=settings.edge_tuning)  # fmt: skip
    figures = run_store_benchmark(bench, _log(args))
    save_store_plot(figures, args.docs / "benchmarks" / "store.png")
    update_section("store", store_table(figures), args.docs / "benchmarks.md")
    print(json.dumps(figures) if args.json else store_table(figures))
    return 0


def _log(args):
    return (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))


def _search(args, settings: Settings) -> int:
    from kloset.bench.document import update_section
    from kloset.bench.search import SearchBench, run_search_benchmark, save_search_plot, search_table

    if args.catalog < 1 or args.item_requests < 16 or args.photo_requests < 16 or args.mixed_seconds < 0:
        raise CommandError("--catalog must be positive, --item-requests and --photo-requests at least 16, "
                           "--mixed-seconds not negative")  # fmt: skip
    if args.data is not None and not (args.data / "labels").is_dir():
        raise CommandError(f"{args.data} is not a K-Fashion folder (no labels/)")
    bench = SearchBench(catalog=args.catalog, data=args.data, limit=args.limit, item_requests=args.item_requests,
                        photo_requests=args.photo_requests, mixed_seconds=args.mixed_seconds)  # fmt: skip
    figures = run_search_benchmark(bench, settings, _log(args))
    save_search_plot(figures, args.docs / "benchmarks" / "search.png")
    update_section("search", search_table(figures), args.docs / "benchmarks.md")
    print(json.dumps(figures) if args.json else search_table(figures))
    return 0


def _model(args, settings: Settings) -> int:
    from kloset.bench.document import update_section
    from kloset.bench.model import measure_backbone, measure_segmenter, model_markdown, save_model_plot

    try:
        batches = tuple(int(part) for part in args.batches.split(",") if part.strip())
    except ValueError:
        raise CommandError(f"--batches must be comma-separated numbers, not {args.batches!r}") from None
    if not batches or min(batches) < 1 or args.seconds <= 0:
        raise CommandError("--batches must be positive numbers and --seconds positive")
    figures = measure_backbone(settings, batches, args.seconds)
    figures["segmenter"] = measure_segmenter(settings, args.seconds)
    save_model_plot(figures, args.docs / "benchmarks" / "model.png")
    update_section("model", model_markdown(figures), args.docs / "benchmarks.md")
    print(json.dumps(figures) if args.json else model_markdown(figures))
    return 0


def _ingest(args, settings: Settings) -> int:
    from kloset.bench.document import update_section
    from kloset.bench.ingest import IngestBench, ingest_markdown, run_ingest_benchmark, save_ingest_plot

    if not (args.data / "labels").is_dir():
        raise CommandError(f"{args.data} is not a K-Fashion folder (no labels/)")
    figures = run_ingest_benchmark(IngestBench(data=args.data, limit=args.limit), settings, _log(args))
    save_ingest_plot(figures, args.docs / "benchmarks" / "ingest.png")
    update_section("ingest", ingest_markdown(figures), args.docs / "benchmarks.md")
    print(json.dumps(figures) if args.json else ingest_markdown(figures))
    return 0


def _retrieval(args, settings: Settings) -> int:
    if not (args.data / "labels").is_dir() and not any(args.data.rglob("*.json")):
        raise CommandError(f"{args.data} is not a K-Fashion folder (no labels/ and no label JSON)")
    from kloset.bench.report import retrieval_table, save_retrieval_plot
    from kloset.bench.retrieval import BenchSettings, run_retrieval_benchmark
    from kloset.core.classifier import AttributeEngine
    from kloset.core.models.loading import load_attribute_model, load_segmenter

    model = load_attribute_model(settings)
    segmenter = load_segmenter(settings)
    classifier = AttributeEngine(model, settings.max_image_pixels, segmenter, settings.max_garments_per_request)
    bench = BenchSettings(
        weights=settings.ranking_weights, candidates=settings.search_candidates,
        default_policy=settings.filter_policy, seed=args.seed, limit=args.limit,
    )  # fmt: skip
    figures = run_retrieval_benchmark(args.data, classifier, bench, _progress(args.quiet or args.json), args.cache)
    if args.plot:
        save_retrieval_plot(figures, args.plot)
    if args.table:
        args.table.parent.mkdir(parents=True, exist_ok=True)
        args.table.write_text(retrieval_table(figures, args.data.name), encoding="utf-8")
    if args.json:
        print(json.dumps(figures, ensure_ascii=False))
    else:
        sys.stdout.write(retrieval_table(figures, args.data.name))
    return 0


def _relevance(args, settings: Settings) -> int:
    from kloset.bench.relevance import RelevanceBench, run_relevance_benchmark
    from kloset.bench.relevance_report import relevance_table, save_relevance_plot
    from kloset.core.models.attributes import read_info

    for folder in (args.data, args.queries):
        if folder is not None and not (folder / "labels").is_dir() and not any(folder.rglob("*.json")):
            raise CommandError(f"{folder} is not a K-Fashion folder (no labels/ and no label JSON)")
    if (args.limit is not None and args.limit < 1) or args.near_duplicates < 0:
        raise CommandError("--limit must be at least 1 and --near-duplicates 0 or more")
    training = read_info(settings.model_dir).training
    tag_photos = training.get("extra_garments_by_kind", {}).get("tag", training.get("extra_garments_train"))
    bench = RelevanceBench(
        data=args.data, queries=args.queries, validation_percent=int(training.get("validation_percent", 15)),
        trained_on_extras=bool(tag_photos), limit=args.limit,
        near_duplicates=args.near_duplicates, seed=args.seed,
    )  # fmt: skip
    figures = run_relevance_benchmark(bench, _log(args))
    if args.plot:
        save_relevance_plot(figures, args.plot)
    if args.table:
        args.table.parent.mkdir(parents=True, exist_ok=True)
        args.table.write_text(relevance_table(figures), encoding="utf-8")
    print(json.dumps(figures, ensure_ascii=False) if args.json else relevance_table(figures))
    return 0
