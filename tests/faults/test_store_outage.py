"""Fault test 3: the vector store refuses writes for a while (a seam in front of the real store)."""

import threading
import time
from collections import Counter

import pytest
from kloset.workers.ingest_worker import IngestWorker

from kloset.core.classifier import AttributeEngine
from kloset.core.errors import Unavailable
from kloset.core.garments.color import COLOR_VECTOR_DIM
from kloset.core.index.indexing import GarmentIndexer
from kloset.core.index.qdrant_store import QdrantGarmentStore
from kloset.core.ingest.blobs import BlobStore
from kloset.core.ingest.catalog import CatalogIngest, Submission
from kloset.core.ingest.jobs import JobState
from kloset.core.ingest.queue import IngestQueue, connect
from kloset.core.limits import InputLimits
from kloset.core.models.attributes import AttributeModel
from kloset.core.models.backbone import EMBEDDING_DIM
from tests.faults.conftest import report
from tests.waiting import wait_until

LIMITS = InputLimits(max_pixels=1_000_000, max_label_bytes=1_000_000)


class OutageStore:
    """The real store, except that writes fail for `outage_s` seconds from the first write attempt.

    The clock starts at the first write, not at set-up, so how long loading the model takes cannot shrink the
    outage to nothing."""

    def __init__(self, store, outage_s: float) -> None:
        self._store = store
        self._outage_s = outage_s
        self.until: float | None = None
        self.refused = 0  # write calls refused (a worker writes a whole batch of jobs in one)
        self.refused_photos: Counter[str] = Counter()  # per photo: how many of its writes were refused

    def upsert(self, garments):
        if self.until is None:
            self.until = time.monotonic() + self._outage_s
        if time.monotonic() < self.until:
            self.refused += 1
            self.refused_photos.update({g.photo_id for g in garments})
            raise Unavailable("Qdrant did not answer: simulated outage")
        self._store.upsert(garments)

    def __getattr__(self, name):
        return getattr(self._store, name)


@pytest.fixture
def setup(redis_url, tmp_path, tiny_model_dir, sample_catalog):
    def make(max_deliveries: int, outage_s: float, photos: int = 12):
        queue = IngestQueue(connect(redis_url), stream=f"test:outage:{tmp_path.name}", claim_idle_ms=60_000,
                            max_deliveries=max_deliveries)  # fmt: skip
        queue.ensure_group()
        blobs = BlobStore(tmp_path / "blobs")
        real = QdrantGarmentStore.open(url=None, api_key=None, path=str(tmp_path / "q"), collection="g",
                                       dim=EMBEDDING_DIM, color_dim=COLOR_VECTOR_DIM)  # fmt: skip
        store = OutageStore(real, outage_s)
        catalog = CatalogIngest(queue, blobs, LIMITS)
        job_ids = []
        for i in range(1, photos + 1):
            if i % 10 == 0:
                continue
            stem = f"{i:04d}"
            job, _ = catalog.submit(
                Submission(image=(sample_catalog / "images" / f"{stem}.jpg").read_bytes(),
                           label_json=(sample_catalog / "labels" / f"{stem}.json").read_bytes(), filename=stem)
            )  # fmt: skip
            job_ids.append(job.job_id)
        indexer = GarmentIndexer(AttributeEngine(AttributeModel.load(tiny_model_dir), 1_000_000), store, blobs, LIMITS)
        stop = threading.Event()
        threads = [
            threading.Thread(target=IngestWorker(queue, indexer, f"w{i}", stop, backoff_s=0.05).run) for i in range(2)
        ]
        for t in threads:
            t.start()
        return queue, store, real, job_ids, stop, threads

    return make


def run_until(queue, job_ids, done, timeout_s=60.0):
    jobs = []

    def settled():
        jobs[:] = [queue.get_job(j) for j in job_ids]
        return done(jobs)

    wait_until(settled, timeout_s, what="the jobs to settle", interval_s=0.05,
               detail=lambda: Counter(j.state for j in jobs))  # fmt: skip
    return jobs


def test_jobs_retry_through_an_outage_and_are_never_acknowledged_unstored(setup):
    queue, store, real, job_ids, stop, threads = setup(max_deliveries=8, outage_s=1.0)
    try:
        wait_until(lambda: store.until is not None, 60, what="the workers' first write to the store")
        # During the outage nothing may be acknowledged: watched over the whole outage, so this sleep is the
        # check's pace, not a wait for something to happen.
        while time.monotonic() < store.until:
            assert all(queue.get_job(j).state is not JobState.DONE for j in job_ids)
            time.sleep(0.05)
        jobs = run_until(queue, job_ids, lambda jobs: all(j.state is JobState.DONE for j in jobs))
    finally:
        stop.set()
        for t in threads:
            t.join()
    stats = queue.stats()
    report("store-outage", submitted=len(job_ids), refused_writes=store.refused, indexed=real.count(),
           dead_lettered=stats.dead_lettered, lost=2 * len(job_ids) - real.count())  # fmt: skip
    assert store.refused >= 2 and max(j.attempts for j in jobs) >= 2
    assert real.count() == 2 * len(job_ids)
    assert (stats.queued, stats.pending, stats.dead_lettered) == (0, 0, 0)
    real.close()


def test_jobs_land_in_the_dead_letters_when_the_store_stays_down(setup):
    queue, store, real, job_ids, stop, threads = setup(max_deliveries=3, outage_s=3600, photos=5)
    try:
        jobs = run_until(queue, job_ids, lambda jobs: all(j.state is JobState.FAILED for j in jobs))
    finally:
        stop.set()
        for t in threads:
            t.join()
    stats = queue.stats()
    report("store-down", submitted=len(job_ids), refused_writes=store.refused, indexed=real.count(),
           dead_lettered=stats.dead_lettered)  # fmt: skip
    assert all("gave up after 3 attempts" in j.error and "simulated outage" in j.error for j in jobs)
    assert (stats.queued, stats.pending, stats.dead_lettered) == (0, 0, len(job_ids))
    assert real.count() == 0 and 1 <= store.refused <= 3 * len(job_ids)
    assert sorted(store.refused_photos.values()) == [3] * len(job_ids)  # every job: one refused write per attempt
    real.close()
