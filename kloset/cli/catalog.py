"""`kloset stats` and `kloset reindex`: the catalog as the search service holds it."""

import json
import sys

from kloset.client.progress import Progress
from kloset.client.stubs import Clients, CommandError
from kloset.v1 import ingest_pb2, search_pb2


def run_stats(clients: Clients, args) -> int:
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


def run_reindex(clients: Clients, args) -> int:
    """Stream the reindex with no deadline (it takes as long as the catalog needs); Ctrl-C cancels it, which
    leaves the old catalog live."""
    call = clients.search().Reindex(reindex_request(args), timeout=None)
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
