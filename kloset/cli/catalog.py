"""`kloset stats` and `kloset reindex`: the catalog as the search service holds it."""

import json

from kloset.cli.client import Clients
from kloset.v1 import ingest_pb2, search_pb2


def run_stats(clients: Clients, args) -> int:
    indexed = clients.search().GetIndexStats(search_pb2.GetIndexStatsRequest(), timeout=30).indexed
    queue = clients.ingest().GetQueueStats(ingest_pb2.GetQueueStatsRequest(), timeout=30)
    stats = {"indexed": indexed, "queued": queue.queued, "pending": queue.pending, "dead_lettered": queue.dead_lettered}
    print(json.dumps(stats) if args.json else "  ".join(f"{k} {v}" for k, v in stats.items()))
    return 0


def run_reindex(clients: Clients, args) -> int:
    raise NotImplementedError("kloset reindex: being built (issue 10)")
