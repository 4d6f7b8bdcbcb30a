"""The `kloset` console script: argument parsing and dispatch; each command lives in its own module."""

import argparse
import json
import logging
import sys
from pathlib import Path

import grpc

from kloset.bench.document import DOCS_DIR
from kloset.client.stubs import Clients, CommandError, rpc_message
from kloset.core import request_context
from kloset.core.config import ConfigError, Role, load_settings, parse_roles
from kloset.core.errors import KlosetError
from kloset.core.index.ranking import FilterPolicy
from kloset.v1 import ingest_pb2

DEFAULT_BENCH_DATA = Path("../shared/data/ccp")  # the data set beside the repository, as CI lays it out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kloset", description="Garment similarity search over gRPC.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the services (every role in one process by default)")
    serve.add_argument("--role", default="all", help="all, or a comma-separated list of roles")
    serve.add_argument("--log-level", help="overrides KLOSET_LOG_LEVEL")

    ingest = commands.add_parser("ingest", help="submit a K-Fashion folder (images/ + labels/) or one image")
    ingest.add_argument("path", type=Path)
    ingest.add_argument("--label", type=Path, help="K-Fashion label JSON for a single image")
    ingest.add_argument("--item-id", help="catalog id for a single image (default: its file stem)")
    ingest.add_argument("--limit", type=int, help="submit only the first N images of a folder")
    ingest.add_argument("--wait", action="store_true", help="block until every job is done or failed")
    ingest.add_argument("--timeout", type=float, default=24 * 3600.0, help="give up after this many seconds")
    ingest.add_argument("--allow-unlabeled", action="store_true", help="also submit photos that have no label")
    ingest.add_argument("--force", action="store_true",
                        help="queue every photo again, even those indexed before (duplicates are otherwise skipped "
                        "while their garments are in the catalog)")  # fmt: skip
    ingest.add_argument("--quiet", action="store_true", help="no progress on stderr")
    ingest.add_argument("--json", action="store_true")

    search = commands.add_parser("search", help="find catalog garments similar to a photo or a catalog item")
    search.add_argument("image", type=Path, nargs="?")
    search.add_argument("--item", help="search with a catalog garment, e.g. 0001/top")
    _add_region_flags(search)
    _add_result_flags(search)
    search.add_argument("--policy", choices=[p.value for p in FilterPolicy], help="filter policy (default: server's)")
    search.add_argument("--offset", type=int, default=0, help="skip this many results (paging)")
    search.add_argument("--min-score", type=float, help="leave out results scoring below this")
    search.add_argument("--group-by-photo", action="store_true", help="at most one result per catalog photo")

    outfit = commands.add_parser("outfit", help="complete the look: bottoms for a top, tops for a bottom")
    outfit.add_argument("image", type=Path, nargs="?")
    outfit.add_argument("--item", help="complete the look of a catalog garment, e.g. 0001/top")
    _add_region_flags(outfit)
    _add_result_flags(outfit)

    classify = commands.add_parser("classify", help="category, color and top-3 of each garment of a photo")
    classify.add_argument("image", type=Path)
    _add_region_flags(classify)
    classify.add_argument("--json", action="store_true")

    dlq = commands.add_parser("dlq", help="inspect, retry or purge dead-lettered ingest jobs")
    dlq.add_argument("action", choices=["list", "retry", "purge"])
    dlq.add_argument("job_ids", nargs="*", help="jobs to retry or purge")
    dlq.add_argument("--all", action="store_true", help="retry or purge every dead letter")
    dlq.add_argument("--limit", type=int, default=100, help="how many to list")
    dlq.add_argument("--json", action="store_true")

    stats = commands.add_parser("stats", help="indexed garments (per model version) and queue depth")
    stats.add_argument("--json", action="store_true")

    reindex = commands.add_parser(
        "reindex", help="re-embed every catalog garment with the current models, then switch the catalog over"
    )
    reindex.add_argument("--max-failures", type=int,
                         help="garments that may fail to re-embed before the reindex stops and the old catalog stays "
                         "live (default: 5%% of the catalog, at least 10)")  # fmt: skip
    reindex.add_argument("--quiet", action="store_true", help="no progress on stderr")
    reindex.add_argument("--json", action="store_true")

    config = commands.add_parser("config", help="print the effective configuration (secrets masked)")
    config.add_argument("--json", action="store_true")

    health = commands.add_parser("health", help="exit 0 only when every role answers SERVING")
    health.add_argument("--role", default="all", help="check only these roles (comma-separated)")

    sample = commands.add_parser("sample", help="write a small synthetic catalog in the K-Fashion layout")
    sample.add_argument("dir", type=Path)
    sample.add_argument("--n", type=int, default=40)
    sample.add_argument("--seed", type=int, default=0)

    train = commands.add_parser("train", help="train the attribute heads or the segmenter on a K-Fashion folder")
    train.add_argument("what", nargs="?", default="attributes", choices=["attributes", "segmenter"])
    train.add_argument("--data", type=Path, required=True)
    train.add_argument("--out", type=Path, help="default: models/attributes or models/segmenter")
    train.add_argument("--input-size", type=int, default=224, help="attributes: crop size in pixels")
    train.add_argument("--height", type=int, default=320, help="segmenter: input height (multiple of 32)")
    train.add_argument("--width", type=int, default=224, help="segmenter: input width (multiple of 32)")
    train.add_argument("--epochs", type=int)
    train.add_argument("--validation-percent", type=int, default=15)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--cache", type=Path, help="feature (attributes) or encoder-map (segmenter) cache file")
    train.add_argument(
        "--queries", type=Path, help="attributes: tag-only photos (queries/ with tags.json) as extra data"
    )
    train.add_argument("--street-crops", action="store_true",
                       help="attributes: also train the category head on the training photos' garments cut out as "
                       "street queries are (the segmenter's crop, and masks that err as it does)")  # fmt: skip

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

    migrate = commands.add_parser(
        "migrate-store", help="copy a catalog from a Qdrant local-mode folder (older kloset) into Qdrant Edge"
    )
    migrate.add_argument("--json", action="store_true")

    segment = commands.add_parser("segment", help="write a photo's garment masks and crops, to look at")
    segment.add_argument("image", type=Path)
    segment.add_argument("--out", type=Path, required=True)

    evaluate = commands.add_parser("evaluate", help="measure the attribute model on a K-Fashion folder")
    evaluate.add_argument("what", choices=["attributes", "segmenter"])
    evaluate.add_argument("--data", type=Path, required=True)
    evaluate.add_argument("--model", type=Path, help="model folder (default: KLOSET_MODEL_DIR / KLOSET_SEGMENTER_DIR)")
    evaluate.add_argument("--split", choices=["all", "validation"], default="all",
                          help="every garment, or only the photos the model held out")  # fmt: skip
    evaluate.add_argument("--plots", type=Path, help="write confusion-matrix PNGs here")
    evaluate.add_argument("--json", action="store_true")
    return parser


def _add_result_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--top-k", type=int, default=0, help="results per garment (default: the server's)")
    parser.add_argument("--category", action="append", help="restrict to this category (repeatable)")
    parser.add_argument("--color", action="append", help="restrict to this color (repeatable)")
    parser.add_argument("--sheet", type=Path, help="also write a contact sheet PNG of the results here")
    parser.add_argument("--json", action="store_true")


def _add_region_flags(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--label", type=Path, help="K-Fashion label JSON with the garments' polygons")
    where.add_argument("--box", help="one garment's box: x,y,width,height")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"kloset: bad configuration: {exc}", file=sys.stderr)
        return 2
    # One request id for the whole command: every call it makes (and every job `kloset ingest` queues) carries
    # it, so one id finds the command's work in every service's log.
    request = request_context.new_request_id()
    try:
        with request_context.bound(None if args.command == "serve" else request):
            return _dispatch(args, settings)
    except (CommandError, KlosetError, ValueError, OSError) as exc:
        print(f"kloset {args.command}: {exc}", file=sys.stderr)
        return 1
    except grpc.RpcError as exc:
        print(f"kloset {args.command}: {rpc_message(exc)} (request id {request})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _dispatch(args, settings) -> int:
    clients = Clients(settings)
    if args.command == "serve":
        return _serve(args, settings)
    if args.command == "ingest":
        from kloset.cli.ingest import run_ingest

        return run_ingest(clients, args)
    if args.command == "search":
        from kloset.cli.query import run_search

        return run_search(clients, args)
    if args.command == "outfit":
        from kloset.cli.query import run_outfit

        return run_outfit(clients, args)
    if args.command == "classify":
        from kloset.cli.query import run_classify

        return run_classify(clients, args)
    if args.command == "dlq":
        return _dlq(clients, args)
    if args.command == "stats":
        from kloset.cli.catalog import run_stats

        return run_stats(clients, args)
    if args.command == "reindex":
        from kloset.cli.catalog import run_reindex

        return run_reindex(clients, args)
    if args.command == "config":
        from kloset.cli.config import run_config

        return run_config(settings, args)
    if args.command == "health":
        return _health(clients, args.role)
    if args.command == "sample":
        from kloset.core.garments.sample import write_sample_catalog

        paths = write_sample_catalog(args.dir, args.n, args.seed)
        print(f"wrote {len(paths)} photos with K-Fashion labels under {args.dir}")
        return 0
    if args.command == "train":
        return _train(args, settings)
    if args.command == "evaluate":
        return _evaluate(args, settings)
    if args.command == "segment":
        return _segment(args, settings)
    if args.command == "bench":
        from kloset.cli.bench import run_bench

        return run_bench(args, settings)
    if args.command == "migrate-store":
        return _migrate_store(args, settings)
    raise CommandError(f"unknown command {args.command}")


def _migrate_store(args, settings) -> int:
    from kloset.client.progress import Progress
    from kloset.core.index.migration import migrate_store

    bar: Progress | None = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        bar = bar or Progress("copying garments", total, enabled=not args.json)
        bar.update(done)

    report = migrate_store(settings, progress)
    if bar:
        bar.close()
    if args.json:
        print(json.dumps(report.__dict__))
    else:
        print(f"copied {report.copied} garments from {report.source} into {report.target} "
              f"({report.store_count} in the store); the old folder is kept: delete it when satisfied")  # fmt: skip
    return 0


def _serve(args, settings) -> int:
    from kloset.program import Program

    _configure_logging(settings, args.log_level)
    program = Program(settings, parse_roles(args.role))
    program.start()
    print("kloset serving " + ", ".join(f"{s.name} on :{s.port}" for s in program.servers), flush=True)
    program.wait()
    if program.failure:  # a worker or the optimizer died: exit non-zero so a supervisor restarts the process
        print(f"kloset: {program.failure}", file=sys.stderr)
        return 1
    return 0


def _configure_logging(settings, level: str | None) -> None:
    """KLOSET_LOG_FORMAT=json: one JSON object per line (python-json-logger), for log collectors. Every line
    carries the request id (x-request-id) of the call or worker job it belongs to, "-" outside one."""
    from kloset.core.config import LogFormat
    from kloset.core.request_context import RequestIdFilter

    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    fields = "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s"
    if settings.log_format is LogFormat.JSON:
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter(fields, rename_fields={"levelname": "level", "name": "logger"}))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"))
    logging.basicConfig(level=(level or settings.log_level).upper(), handlers=[handler], force=True)


def _dlq(clients: Clients, args) -> int:
    stub = clients.ingest()
    if args.action == "list":
        answer = stub.ListDeadLetters(ingest_pb2.ListDeadLettersRequest(limit=args.limit), timeout=30)
        letters = [
            {"job_id": d.job_id, "item_id": d.item_id, "filename": d.filename, "error": d.error,
             "failed_at": d.failed_at}
            for d in answer.dead_letters
        ]  # fmt: skip
        if args.json:
            print(json.dumps({"total": answer.total, "dead_letters": letters}, ensure_ascii=False))
        else:
            print(f"{answer.total} dead letters")
            for d in letters:
                print(f"  {d['job_id']}  {d['filename'] or d['item_id']}: {d['error']}")
        return 0
    if not args.job_ids and not args.all:
        raise CommandError(f"dlq {args.action} needs JOB_IDs or --all")
    if args.action == "retry":
        request = ingest_pb2.RetryDeadLettersRequest(job_ids=args.job_ids, all=args.all)
        print(f"retried {stub.RetryDeadLetters(request, timeout=60).retried}")
    else:
        request = ingest_pb2.PurgeDeadLettersRequest(job_ids=args.job_ids, all=args.all)
        print(f"purged {stub.PurgeDeadLetters(request, timeout=60).purged}")
    return 0


def _health(clients: Clients, roles: str) -> int:
    statuses = {role.value: clients.health(role) for role in Role if role in parse_roles(roles)}
    for role, status in statuses.items():
        print(f"{role:<10} {status}")
    return 0 if all(s == "SERVING" for s in statuses.values()) else 1


def _train(args, settings) -> int:
    logging.basicConfig(level="INFO", format="%(message)s")
    if args.what == "segmenter":
        from kloset.core.models.segmenter_training import extract_maps, train_segmenter

        maps = extract_maps(args.data, args.height, args.width, settings.backbone_weights, args.cache)
        info = train_segmenter(
            maps, height=args.height, width=args.width, out_dir=args.out or Path("models/segmenter"),
            epochs=args.epochs or 40, validation_percent=args.validation_percent, seed=args.seed,
            source=args.data.name,
        )  # fmt: skip
    else:
        from kloset.core.models.training import extract_features, train_heads

        features = extract_features(args.data, args.input_size, settings.backbone_weights, args.cache)
        if args.queries:
            from kloset.core.models.loading import load_segmenter
            from kloset.core.models.training import extract_query_features, merge

            segmenter = load_segmenter(settings)
            cache = args.cache.with_name(f"{args.cache.stem}-queries.npz") if args.cache else None
            extra = extract_query_features(args.queries, args.input_size, segmenter, settings.backbone_weights, cache)
            features = merge(features, extra)
        if args.street_crops:
            from kloset.core.models.loading import load_segmenter
            from kloset.core.models.training import extract_street_features, merge

            segmenter = load_segmenter(settings)
            cache = args.cache.with_name(f"{args.cache.stem}-street.npz") if args.cache else None
            street = extract_street_features(args.data, args.input_size, segmenter, settings.backbone_weights, cache,
                                             args.validation_percent, seed=args.seed)  # fmt: skip
            features = merge(features, street)
        info = train_heads(
            features, input_size=args.input_size, out_dir=args.out or Path("models/attributes"),
            epochs=args.epochs or 40, validation_percent=args.validation_percent, seed=args.seed,
            source=args.data.name,
        )  # fmt: skip
    print(json.dumps({"version": info.version, **info.training}, ensure_ascii=False))
    return 0


def _evaluate(args, settings) -> int:
    if not (args.data / "labels").is_dir():
        raise CommandError(f"{args.data} is not a K-Fashion folder (no labels/)")
    if args.what == "segmenter":
        from kloset.core.models.loading import load_segmenter
        from kloset.core.models.segmenter_training import evaluate_segmenter

        segmenter = load_segmenter(settings, args.model)
        figures = evaluate_segmenter(segmenter, args.data, args.split)
    else:
        figures = _evaluate_attributes(args, settings)
    if args.json:
        print(json.dumps(figures, ensure_ascii=False))
    else:
        print("  ".join(f"{k} {v}" for k, v in figures.items() if k != "per_class"))
    return 0


def _evaluate_attributes(args, settings) -> dict:
    from kloset.core.garments.labels import CATEGORIES, COLORS
    from kloset.core.models.evaluation import evaluate_attributes
    from kloset.core.models.loading import load_attribute_model

    model = load_attribute_model(settings, args.model)
    figures, matrices = evaluate_attributes(model, args.data, args.split)
    if args.plots:
        from kloset.core.models.plots import save_confusion

        for head, labels in (("category", CATEGORIES), ("color", COLORS)):
            title = f"{head}, {figures['n']} garments ({args.split}), {model.version}"
            save_confusion(matrices[head], labels, args.plots / f"confusion_{head}.png", title)
    return figures


def _segment(args, settings) -> int:
    from kloset.core.garments.images import decode_image
    from kloset.core.models.loading import load_segmenter
    from kloset.core.models.plots import save_segmentation

    segmenter = load_segmenter(settings)
    pixels = decode_image(args.image.read_bytes(), settings.max_image_pixels, apply_exif_orientation=True)
    written = save_segmentation(pixels, segmenter.segment(pixels), args.out, args.image.stem)
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
