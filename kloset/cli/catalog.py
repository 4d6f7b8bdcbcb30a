"""`kloset stats`, `reindex`, `dlq` and `migrate-store`: the catalog and the queue as the services hold them."""

import argparse
import json
import sys

from kloset.client.progress import Progress
from kloset.client.stubs import Clients, CommandError
from kloset.core.config import Settings
from kloset.v1 import ingest_pb2, search_pb2


def register(commands: argparse._SubParsersAction) -> None:
    dlq = commands.add_parser("dlq", help="inspect, retry or purge dead-lettered ingest jobs")
    dlq.add_argument("action", choices=["list", "retry", "purge"])
    dlq.add_argument("job_ids", nargs="*", help="jobs to retry or purge")
    dlq.add_argument("--all", action="store_true", help="retry or purge every dead letter")
    dlq.add_argument("--limit", type=int, default=100, help="how many to list")
    dlq.add_argument("--json", action="store_true")
    dlq.set_defaults(run=run_dlq)
    stats = commands.add_parser("stats", help="indexed garments (per model version) and queue depth")
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(run=run_stats)
    reindex = commands.add_parser(
        "reindex", help="re-embed every catalog garment with the current models, then switch the catalog over"
    )
    reindex.add_argument("--max-failures", type=int,
                         help="garments that may fail to re-embed before the reindex stops and the old catalog stays "
                         "live (default: 5%% of the catalog, at least 10)")  # fmt: skip
    reindex.add_argument("--quiet", action="store_true", help="no progress on stderr")
    reindex.add_argument("--json", action="store_true")
    reindex.set_defaults(run=run_reindex)
    migrate = commands.add_parser(
        "migrate-store", help="copy a catalog from a Qdrant local-mode folder (older kloset) into Qdrant Edge"
    )
    migrate.add_argument("--json", action="store_true")
    migrate.set_defaults(run=run_migrate_store)


def run_stats(args, settings: Settings) -> int:
    clients = Clients(settings)
    index = clients.search().GetIndexStats(search_pb2.GetIndexStatsRequest(), timeout=30)
    queue = clients.ingest().GetQueueStats(ingest_pb2.GetQueueStatsRequest(), timeout=30)
    stats = {"indexed": index.indexed, "queued": queue.queued, "pending": queue.pending,
             "dead_lettered": queue.dead_lettered}  # fmt: skip
    versions = {v.model_version: v.garments for v in index.model_versions}
    if args.json:
        print(json.dumps({**stats, "model_versions": versions}))
        return 0
    print("  ".join(f"{k} {v}" for k, v in stats.items()))
    for version, garments in versions.items():
        print(f"model_version {version}  {garments}")
    return 0


def reindex_request(args) -> search_pb2.ReindexRequest:
    """The request `kloset reindex` sends: max_failures only when --max-failures is given (else the server's
    default applies)."""
    if args.max_failures is None:
        return search_pb2.ReindexRequest()
    if args.max_failures < 0:
        raise CommandError(f"--max-failures must be 0 or more, not {args.max_failures}")
    return search_pb2.ReindexRequest(max_failures=args.max_failures)


def run_reindex(args, settings: Settings) -> int:
    """Stream the reindex with no deadline (it takes as long as the catalog needs); Ctrl-C cancels it, which
    leaves the old catalog live."""
    call = Clients(settings).search().Reindex(reindex_request(args), timeout=None)
    progress, total = Progress("reindex", 0, enabled=False), 0
    try:
        for response in call:
            if response.HasField("summary"):
                progress.close()
                _print_summary(response.summary, args.json)
                return 0
            if response.progress.total != total:  # garments written meanwhile are caught up: the total grows
                progress.close()
                total = response.progress.total
                progress = Progress("reindex", total, enabled=not args.quiet)
            progress.update(response.progress.done)
    except KeyboardInterrupt:
        call.cancel()
        print("\nkloset reindex: cancelled; the old catalog stays live", file=sys.stderr)
        return 130
    raise CommandError("the search service ended the reindex without a summary")


def _print_summary(summary: search_pb2.ReindexSummary, as_json: bool) -> None:
    versions = {v.model_version: v.garments for v in summary.model_versions}
    if as_json:
        failures = [{"item_id": f.item_id, "reason": f.reason} for f in summary.failures]
        print(json.dumps({"re_embedded": summary.re_embedded, "copied": summary.copied, "failed": summary.failed,
                          "failures": failures, "model_version": summary.model_version, "model_versions": versions,
                          "seconds": round(summary.seconds, 3)}))  # fmt: skip
        return
    done = summary.re_embedded + summary.copied + summary.failed
    print(f"reindexed {done} garments with {summary.model_version} in {summary.seconds:.1f} s: "
          f"{summary.re_embedded} re-embedded, {summary.copied} copied, {summary.failed} failed")  # fmt: skip
    for failure in summary.failures:
        print(f"  failed {failure.item_id} (kept as it was): {failure.reason}")
    if summary.failed > len(summary.failures):
        print(f"  ... and {summary.failed - len(summary.failures)} more (see the search service's log)")
    for version, garments in versions.items():
        print(f"model_version {version}  {garments}")


def run_dlq(args, settings: Settings) -> int:
    stub = Clients(settings).ingest()
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


def run_migrate_store(args, settings: Settings) -> int:
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
