"""A worker thread: read a batch of jobs, index them together, acknowledge each only once the store has it.

Jobs are collected until they name batch_garments garments or batch_wait_ms has passed, prepared (blob read,
decode, crop, color statistics) on a shared thread pool, classified in one forward pass and written with one
upsert. Each job keeps its own fate: bad input fails that job alone; a store outage leaves the whole batch pending.
"""

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor

from kloset.core import request_context
from kloset.core.classifier import DEFAULT_BATCH_GARMENTS, DEFAULT_BATCH_WAIT_MS
from kloset.core.errors import InvalidInput, NotFound, Unavailable
from kloset.core.index.indexing import GarmentIndexer, PreparedJob
from kloset.core.ingest.jobs import Delivery
from kloset.core.ingest.queue import IngestQueue
from kloset.core.telemetry import Metrics

log = logging.getLogger(__name__)
_MAX_BACKOFF_S = 30.0
_FINAL = (InvalidInput, NotFound)  # errors a retry cannot cure


class IngestWorker:
    def __init__(
        self,
        queue: IngestQueue,
        indexer: GarmentIndexer,
        consumer: str,
        stop: threading.Event,
        backoff_s: float = 0.5,
        *,
        batch_garments: int = DEFAULT_BATCH_GARMENTS,
        batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS,
        prepare_pool: Executor | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """prepare_pool: where jobs are prepared (shared by the workers of a process); None prepares in this thread.
        metrics: where the stages' times go (the Program's)."""
        self._queue = queue
        self._indexer = indexer
        self.consumer = consumer
        self._stop = stop
        self._backoff_s = backoff_s
        self._batch_garments = batch_garments
        self._batch_wait_s = batch_wait_ms / 1000
        self._pool = prepare_pool
        self._failures_in_a_row = 0
        self._metrics = metrics or Metrics()

    def run(self) -> None:
        """Loop until stopped; a batch in progress is finished (or left pending) before returning."""
        self._queue.ensure_group()
        while not self._stop.is_set():
            try:
                deliveries = self._collect()
            except Unavailable as exc:
                log.warning("%s: queue unavailable: %s", self.consumer, exc)
                self._back_off()
                continue
            except Exception:  # a bug reading the queue: say so and keep consuming, never die silently
                log.exception("%s: reading the queue failed", self.consumer)
                self._back_off()
                continue
            if not deliveries:
                continue
            try:
                self.handle_batch(deliveries)
            except Exception:  # e.g. Redis went away mid-batch: the entries stay pending, keep going
                log.exception("%s: %d job(s) left pending", self.consumer, len(deliveries))
                self._back_off()

    def _collect(self) -> list[Delivery]:
        """Jobs for one batch: its own unacknowledged ones first, then new ones until the batch is full or late."""
        deliveries = self._queue.read(self.consumer, count=self._jobs_for(0), block_ms=1000)
        if not deliveries:
            return []
        deadline = time.monotonic() + self._batch_wait_s
        while (garments := _garments(deliveries)) < self._batch_garments:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                break
            more = self._queue.read_new(self.consumer, count=self._jobs_for(garments), block_ms=left_ms)
            if not more:
                break
            deliveries.extend(more)
        return deliveries

    def _jobs_for(self, garments: int) -> int:
        # Street photos name one to two garments; asking for half the missing count rarely overfills the batch.
        return max(1, (self._batch_garments - garments + 1) // 2)

    def handle(self, delivery: Delivery) -> None:
        """Index one job (a batch of one)."""
        self.handle_batch([delivery])

    def handle_batch(self, deliveries: Sequence[Delivery]) -> None:
        """Index jobs together. Bad input fails its job at once; other errors leave jobs pending for a later retry."""
        live = [d for d in deliveries if not self._give_up_if_expired(d) and not self._give_up_if_exhausted(d)]
        now = time.time()
        for delivery in live:
            if delivery.deliveries == 1:  # a retry's wait is its backoff, not the queue's
                self._metrics.stage_queue.observe(max(0.0, now - delivery.queued_at))
            self._queue.mark_processing(delivery)
        retried = False
        ready: list[tuple[Delivery, PreparedJob]] = []
        for delivery, prepared in zip(live, self._map(self._indexer.prepare, [d.spec for d in live]), strict=True):
            if isinstance(prepared, Exception):
                retried |= self._not_done(delivery, prepared)
            else:
                ready.append((delivery, prepared))
        if ready:
            retried |= self._index(ready)
        if retried:
            self._back_off()
        else:
            self._failures_in_a_row = 0

    def _index(self, ready: list[tuple[Delivery, PreparedJob]]) -> bool:
        """One forward pass and one upsert for the batch, then each job acknowledged; True if any is retried."""
        try:
            with self._metrics.stage_index.time():
                outcomes = self._indexer.index_batch([prepared for _, prepared in ready])
        except Exception as exc:  # store or attribute service down, or a bug: retry the batch later, never ack
            for delivery, _ in ready:
                self._not_done(delivery, exc)
            return True
        retried = False
        for (delivery, _), outcome in zip(ready, outcomes, strict=True):
            if isinstance(outcome, Exception):
                retried |= self._not_done(delivery, outcome)
            else:
                retried |= not self._complete(delivery, outcome)
        return retried

    def _give_up_if_expired(self, delivery: Delivery) -> bool:
        """A job whose record is gone (older than KLOSET_JOB_TTL_S) is dead-lettered, not retried forever."""
        if self._queue.job_exists(delivery.job_id):
            return False
        with _job_scope(delivery):
            reason = (f"the record of job {delivery.job_id} expired (KLOSET_JOB_TTL_S) or was never written; "
                      "retry the dead letter or submit the photo again")  # fmt: skip
            log.warning("job %s dead-lettered: %s", delivery.job_id, reason)
            self._queue.fail(delivery, reason)
        return True

    def _give_up_if_exhausted(self, delivery: Delivery) -> bool:
        if not self._queue.exhausted(delivery):
            return False
        try:
            last = self._queue.get_job(delivery.job_id).error
        except NotFound:
            last = ""
        with _job_scope(delivery):
            log.info("job %s failed after %d attempts: %s", delivery.job_id, delivery.deliveries - 1, last)
            self._queue.fail(delivery, f"gave up after {delivery.deliveries - 1} attempts: {last}")
        return True

    def _not_done(self, delivery: Delivery, exc: Exception) -> bool:
        """Fail the job if its input is bad, else record the error and leave it pending; True when it is retried."""
        with _job_scope(delivery):
            if isinstance(exc, _FINAL):
                log.info("job %s failed: %s", delivery.job_id, exc)
                self._queue.fail(delivery, str(exc))
                return False
            log.warning("job %s will be retried: %s", delivery.job_id, exc, exc_info=not isinstance(exc, Unavailable))
            self._queue.note_error(delivery, f"{type(exc).__name__}: {exc}")
            return True

    def _complete(self, delivery: Delivery, item_ids: list[str]) -> bool:
        with _job_scope(delivery):
            try:
                with self._metrics.stage_ack.time():
                    self._queue.complete(delivery, item_ids)
            except Exception:  # e.g. Redis went away while acknowledging: the entry stays pending, the store has it
                log.exception("%s: job %s left pending", self.consumer, delivery.job_id)
                return False
            log.info("job %s done: %s", delivery.job_id, ", ".join(item_ids) or "no garment")
            return True

    def _map(self, prepare: Callable, specs: Sequence) -> list:
        """prepare over specs on the pool (in this thread without one); an exception is the job's outcome."""

        def attempt(spec):
            try:
                with self._metrics.stage_prepare.time():
                    return prepare(spec)
            except Exception as exc:
                return exc

        if self._pool is None or len(specs) < 2:
            return [attempt(spec) for spec in specs]
        return list(self._pool.map(attempt, specs))

    def _back_off(self) -> None:
        self._failures_in_a_row += 1
        self._stop.wait(min(_MAX_BACKOFF_S, self._backoff_s * 2 ** min(self._failures_in_a_row - 1, 6)))


def _job_scope(delivery: Delivery):
    """Log lines about a job carry the request id of the submission that queued it."""
    return request_context.bound(delivery.spec.request_id or None)


def _garments(deliveries: Sequence[Delivery]) -> int:
    """Garments the jobs name (a photo without a label is one)."""
    return sum(max(1, len(d.spec.item_ids)) for d in deliveries)
