"""What kloset measures about itself, as Prometheus metrics; services/metrics.py serves them over HTTP.

The core records into the metrics below and never serves them. They belong to no registry here: each Program
builds its own (process_registry), so a process that starts several Programs (the tests) never registers a name
twice. Queue depth and catalog size are read from the live queue and store when Prometheus scrapes, not polled.
Label values are fixed words or model versions: never an item id, a job id, a key or anything a caller sent.
"""

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

if TYPE_CHECKING:  # the queue and store modules record into this one
    from kloset.core.index.store import GarmentStore
    from kloset.core.ingest.queue import IngestQueue

log = logging.getLogger(__name__)

# Edge answers a search in well under a millisecond; a Qdrant server or a big upsert takes tens to hundreds.
_STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# A forward pass of a batch: tens of ms on a GPU, up to seconds for a full batch on a small CPU.
_MODEL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

FORWARD_SECONDS = Histogram(
    "kloset_model_forward_seconds", "Time of one forward pass of a model over a batch.", ["model"],
    buckets=_MODEL_BUCKETS, registry=None,
)  # fmt: skip
ATTRIBUTE_FORWARD = FORWARD_SECONDS.labels(model="attributes")
SEGMENTER_FORWARD = FORWARD_SECONDS.labels(model="segmenter")

STORE_SECONDS = Histogram(
    "kloset_store_seconds", "Time of a vector store call, by operation.", ["operation"],
    buckets=_STORE_BUCKETS, registry=None,
)  # fmt: skip
STORE_SEARCH = STORE_SECONDS.labels(operation="search")
STORE_UPSERT = STORE_SECONDS.labels(operation="upsert")

# Where an ingest job's time goes in a worker, as wall time on the thread doing it (`kloset bench ingest` reads
# them beside the model's and the store's): queue from the job's XADD to its first delivery, prepare (blob read,
# decode, crop) per job, index (the batch's forward pass and upsert, and what lies between) per batch, ack per job.
_STAGE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
INGEST_STAGE_SECONDS = Histogram(
    "kloset_ingest_stage_seconds", "Time of a stage of ingest in a worker: queue and prepare and ack per job, index "
    "per batch.", ["stage"], buckets=_STAGE_BUCKETS, registry=None,
)  # fmt: skip
STAGE_QUEUE = INGEST_STAGE_SECONDS.labels(stage="queue")
STAGE_PREPARE = INGEST_STAGE_SECONDS.labels(stage="prepare")
STAGE_INDEX = INGEST_STAGE_SECONDS.labels(stage="index")
STAGE_ACK = INGEST_STAGE_SECONDS.labels(stage="ack")

JOBS = Counter(
    "kloset_ingest_jobs", "Ingest jobs this process finished or put back for a retry, by outcome.", ["outcome"],
    registry=None,
)  # fmt: skip
JOBS_DONE = JOBS.labels(outcome="done")
JOBS_FAILED = JOBS.labels(outcome="failed")  # dead-lettered
JOBS_RETRIED = JOBS.labels(outcome="retried")  # a transient error: left pending for another delivery


class QueueCollector(Collector):
    """The ingest queue's depth, read from Redis at each scrape (one round trip)."""

    def __init__(self, queue: "IngestQueue") -> None:
        self._queue = queue

    def describe(self) -> Iterator[Metric]:
        return iter(_queue_families())

    def collect(self) -> Iterator[Metric]:
        try:
            stats = self._queue.stats()
        except Exception as exc:  # a scrape must not fail because Redis is away: the series go missing instead
            log.warning("metrics: no queue depth this scrape: %s", exc)
            return iter(())
        queued, pending, dead = _queue_families()
        queued.add_metric([], stats.queued)
        pending.add_metric([], stats.pending)
        dead.add_metric([], stats.dead_lettered)
        return iter((queued, pending, dead))


def _queue_families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
    return (
        GaugeMetricFamily("kloset_queue_queued_jobs", "Jobs in the queue not yet delivered to a worker."),
        GaugeMetricFamily("kloset_queue_pending_jobs", "Jobs delivered to a worker and not yet acknowledged."),
        GaugeMetricFamily("kloset_queue_dead_letter_jobs", "Jobs in the dead letters."),
    )


class CatalogCollector(Collector):
    """Garments per model_version, read from the store's payload index at each scrape (a facet count)."""

    def __init__(self, store: "GarmentStore") -> None:
        self._store = store

    def describe(self) -> Iterator[Metric]:
        return iter([_catalog_family()])

    def collect(self) -> Iterator[Metric]:
        try:
            versions = self._store.model_versions()
        except Exception as exc:  # the store away or closing: the series go missing instead of the scrape failing
            log.warning("metrics: no catalog size this scrape: %s", exc)
            return iter(())
        family = _catalog_family()
        for version, count in sorted(versions.items()):
            family.add_metric([version], count)
        return iter([family])


def _catalog_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "kloset_catalog_garments", "Garments in the catalog, by the model version that indexed them.",
        labels=["model_version"],
    )  # fmt: skip


def process_registry(
    queue: "IngestQueue | None" = None, store: "GarmentStore | None" = None
) -> CollectorRegistry:
    """A registry of this process's metrics: the process itself, model, store and job metrics, and the queue's
    depth and catalog's size when this process holds them. Callers add their own (the gRPC server's)."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    for metric in (FORWARD_SECONDS, STORE_SECONDS, INGEST_STAGE_SECONDS, JOBS):
        registry.register(metric)
    if queue is not None:
        registry.register(QueueCollector(queue))
    if store is not None:
        registry.register(CatalogCollector(store))
    return registry
