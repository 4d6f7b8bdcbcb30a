"""What kloset measures about itself, as Prometheus metrics; services/metrics.py serves them over HTTP.

The core records into a Metrics it is handed and never serves it. Each Program makes one, with a registry of its
own, and hands it to its queue, store, models and workers; so two Programs in one process (the tests) never count
each other's jobs, and a component made without one (a CLI command, a benchmark, a test) records into a registry
nobody reads. Label values are fixed words or model versions: never an item id, a job id, a key or anything a
caller sent.
"""

import functools
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram

# Edge answers a search in well under a millisecond; a Qdrant server or a big upsert takes tens to hundreds.
_STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# A forward pass of a batch: tens of ms on a GPU, up to seconds for a full batch on a small CPU.
_MODEL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Where an ingest job's time goes in a worker, as wall time on the thread doing it (`kloset bench ingest` reads
# them beside the model's and the store's): queue from the job's XADD to its first delivery, prepare (blob read,
# decode, crop) per job, index (the batch's forward pass and upsert, and what lies between) per batch, ack per job.
_STAGE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class Metrics:
    """The metrics one Program records, registered in registry (a new one when none is given)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.attribute_forward, self.segmenter_forward = self._timers(
            "kloset_model_forward_seconds", "Time of one forward pass of a model over a batch.", _MODEL_BUCKETS,
            "model", ("attributes", "segmenter"),
        )  # fmt: skip
        self.store_search, self.store_upsert = self._timers(
            "kloset_store_seconds", "Time of a vector store call, by operation.", _STORE_BUCKETS,
            "operation", ("search", "upsert"),
        )  # fmt: skip
        self.stage_queue, self.stage_prepare, self.stage_index, self.stage_ack = self._timers(
            "kloset_ingest_stage_seconds", "Time of a stage of ingest in a worker: queue and prepare and ack per "
            "job, index per batch.", _STAGE_BUCKETS, "stage", ("queue", "prepare", "index", "ack"),
        )  # fmt: skip
        jobs = Counter(
            "kloset_ingest_jobs", "Ingest jobs this process finished or put back for a retry, by outcome.",
            ["outcome"], registry=self.registry,
        )  # fmt: skip
        # failed: dead-lettered; retried: a transient error, left pending for another delivery.
        self.jobs_done, self.jobs_failed, self.jobs_retried = (jobs.labels(o) for o in ("done", "failed", "retried"))

    def _timers(self, name: str, doc: str, buckets: tuple[float, ...], label: str, values: tuple[str, ...]) -> list:
        """One histogram in this registry, and its child for each value of its one label, in that order."""
        histogram = Histogram(name, doc, [label], buckets=buckets, registry=self.registry)
        return [histogram.labels(value) for value in values]


def timed(timer: str) -> Callable:
    """A method decorator: each call's time goes to self.metrics.<timer> (the Metrics its object was handed)."""

    def decorate(method: Callable) -> Callable:
        @functools.wraps(method)
        def call(self, *args, **kwargs):
            with getattr(self.metrics, timer).time():
                return method(self, *args, **kwargs)

        return call

    return decorate
