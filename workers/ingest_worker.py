"""A worker thread: read a job, index it, acknowledge it only once the store has it."""

import logging
import threading

from kloset.core.errors import InvalidInput, NotFound, Unavailable
from kloset.core.index.indexing import GarmentIndexer
from kloset.core.ingest.queue import Delivery, IngestQueue

log = logging.getLogger(__name__)
_MAX_BACKOFF_S = 30.0


class IngestWorker:
    def __init__(
        self,
        queue: IngestQueue,
        indexer: GarmentIndexer,
        consumer: str,
        stop: threading.Event,
        backoff_s: float = 0.5,
    ) -> None:
        self._queue = queue
        self._indexer = indexer
        self.consumer = consumer
        self._stop = stop
        self._backoff_s = backoff_s
        self._failures_in_a_row = 0

    def run(self) -> None:
        """Loop until stopped; a job in progress is finished (or left pending) before returning."""
        self._queue.ensure_group()
        while not self._stop.is_set():
            try:
                deliveries = self._queue.read(self.consumer, count=1, block_ms=1000)
            except Unavailable as exc:
                log.warning("%s: queue unavailable: %s", self.consumer, exc)
                self._back_off()
                continue
            for delivery in deliveries:
                try:
                    self.handle(delivery)
                except Exception:  # e.g. Redis went away while acknowledging: the entry stays pending, keep going
                    log.exception("%s: job %s left pending", self.consumer, delivery.job_id)
                    self._back_off()

    def handle(self, delivery: Delivery) -> None:
        """Index one job. Bad input fails at once; other errors leave it pending for a later retry."""
        if self._queue.exhausted(delivery):
            job = self._queue.get_job(delivery.job_id) if delivery.job_id else None
            last = job.error if job else ""
            self._queue.fail(delivery, f"gave up after {delivery.deliveries - 1} attempts: {last}")
            return
        self._queue.mark_processing(delivery)
        try:
            item_ids = self._indexer.index(delivery.spec)
        except (InvalidInput, NotFound) as exc:
            log.info("job %s failed: %s", delivery.job_id, exc)
            self._queue.fail(delivery, str(exc))
            return
        except Exception as exc:  # store or attribute service down, or a bug: retry later, never ack
            log.warning("job %s will be retried: %s", delivery.job_id, exc, exc_info=not isinstance(exc, Unavailable))
            self._queue.note_error(delivery, f"{type(exc).__name__}: {exc}")
            self._back_off()
            return
        self._queue.complete(delivery, item_ids)
        self._failures_in_a_row = 0

    def _back_off(self) -> None:
        self._failures_in_a_row += 1
        self._stop.wait(min(_MAX_BACKOFF_S, self._backoff_s * 2 ** min(self._failures_in_a_row - 1, 6)))
