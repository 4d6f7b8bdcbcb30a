"""The worker against a real redis-server, a real Qdrant local store and the tiny trained model."""

import json
import threading

import pytest
from kloset.workers.ingest_worker import IngestWorker

from kloset.core.classifier import AttributeEngine
from kloset.core.errors import Unavailable
from kloset.core.garments.color import COLOR_VECTOR_DIM
from kloset.core.index.indexing import GarmentIndexer
from kloset.core.index.qdrant_store import QdrantGarmentStore
from kloset.core.ingest.blobs import BlobStore
from kloset.core.ingest.catalog import CatalogIngest, Submission
from kloset.core.ingest.jobs import JobSpec, JobState
from kloset.core.limits import InputLimits
from kloset.core.models.attributes import AttributeModel
from kloset.core.models.backbone import EMBEDDING_DIM
from tests.waiting import wait_until

LIMITS = InputLimits(max_pixels=1_000_000, max_label_bytes=1_000_000)


class FlakyStore:
    """A store whose writes fail until `failures` runs out: the seam for store outages."""

    def __init__(self, store, failures: int) -> None:
        self._store = store
        self.failures = failures

    def upsert(self, garments):
        if self.failures > 0:
            self.failures -= 1
            raise Unavailable("Qdrant did not answer: simulated outage")
        self._store.upsert(garments)

    def __getattr__(self, name):
        return getattr(self._store, name)


@pytest.fixture
def parts(queue, tmp_path, tiny_model_dir):
    blobs = BlobStore(tmp_path / "blobs")
    store = QdrantGarmentStore.open(
        url=None, api_key=None, path=str(tmp_path / "q"), collection="g", dim=EMBEDDING_DIM, color_dim=COLOR_VECTOR_DIM
    )
    engine = AttributeEngine(AttributeModel.load(tiny_model_dir), 1_000_000)
    catalog = CatalogIngest(queue, blobs, LIMITS)
    yield catalog, blobs, store, engine
    store.close()


def submit_sample(catalog, sample_catalog, stem="0001"):
    job, _ = catalog.submit(
        Submission(
            image=(sample_catalog / "images" / f"{stem}.jpg").read_bytes(),
            label_json=(sample_catalog / "labels" / f"{stem}.json").read_bytes(),
            filename=f"{stem}.jpg",
        )
    )
    return job


def worker(queue, engine, store, blobs):
    indexer = GarmentIndexer(engine, store, blobs, LIMITS)
    return IngestWorker(queue, indexer, "w1", threading.Event())


def test_a_job_is_indexed_then_acknowledged(parts, queue, sample_catalog):
    catalog, blobs, store, engine = parts
    job = submit_sample(catalog, sample_catalog)
    w = worker(queue, engine, store, blobs)
    [delivery] = queue.read(w.consumer, block_ms=100)
    w.handle(delivery)
    record = queue.get_job(job.job_id)
    assert record.state is JobState.DONE and record.item_ids == ("0001/top", "0001/bottom")
    assert store.count() == 2
    assert store.retrieve("0001/top").source == "0001.jpg"
    assert queue.stats().pending == 0


def test_a_job_that_cannot_succeed_fails_at_once_with_its_reason(parts, queue, sample_catalog):
    catalog, blobs, store, engine = parts
    job = submit_sample(catalog, sample_catalog)
    [delivery] = queue.read("w1", block_ms=100)
    (blobs._root / delivery.spec.image_digest[:2] / delivery.spec.image_digest[2:]).unlink()  # lost blob
    worker(queue, engine, store, blobs).handle(delivery)
    assert_failed_at_once(queue, store, job.job_id, "missing")


def assert_failed_at_once(queue, store, job_id: str, reason: str) -> None:
    """Failed with its reason and dead-lettered on its first delivery, without retries; nothing stored."""
    record = queue.get_job(job_id)
    assert record.state is JobState.FAILED and reason in record.error
    stats = queue.stats()
    assert (stats.pending, stats.dead_lettered) == (0, 1)
    assert store.count() == 0


def test_a_queued_label_that_is_no_longer_accepted_fails_at_once_with_its_reason(parts, queue, sample_catalog):
    """A job queued before labels were checked whole: the worker parses the label again and fails the job cleanly,
    without retries, like any label it cannot use."""
    _, blobs, store, engine = parts
    label = json.loads((sample_catalog / "labels" / "0001.json").read_bytes())
    label["데이터셋 정보"]["데이터셋 상세설명"]["라벨링"]["아우터"] = [{"카테고리": "코트", "색상": "마젠타"}]
    spec = JobSpec(blobs.put((sample_catalog / "images" / "0001.jpg").read_bytes()),
                   blobs.put(json.dumps(label).encode()), "0001", "0001.jpg", ("0001/top", "0001/bottom"))  # fmt: skip
    job, _ = queue.enqueue(spec)
    [delivery] = queue.read("w1", block_ms=100)
    worker(queue, engine, store, blobs).handle(delivery)
    assert_failed_at_once(queue, store, job.job_id, "라벨링.아우터.색상: unknown color '마젠타'")


def test_store_outage_is_retried_and_never_acknowledged_before_the_write(parts, queue, sample_catalog, monkeypatch):
    catalog, blobs, store, engine = parts
    monkeypatch.setattr(IngestWorker, "_back_off", lambda self: None)
    flaky = FlakyStore(store, failures=2)
    w = worker(queue, engine, flaky, blobs)
    job = submit_sample(catalog, sample_catalog)
    for _ in range(2):
        [delivery] = queue.read(w.consumer, block_ms=100)
        w.handle(delivery)
        assert queue.get_job(job.job_id).state is JobState.QUEUED
        assert queue.stats().pending == 1  # still owned, not acknowledged
    [delivery] = queue.read(w.consumer, block_ms=100)
    w.handle(delivery)
    assert queue.get_job(job.job_id).state is JobState.DONE
    assert store.count() == 2 and queue.stats().pending == 0


def test_a_job_past_its_delivery_limit_goes_to_the_dead_letters(parts, queue, sample_catalog, monkeypatch):
    catalog, blobs, store, engine = parts
    monkeypatch.setattr(IngestWorker, "_back_off", lambda self: None)
    w = worker(queue, engine, FlakyStore(store, failures=100), blobs)
    job = submit_sample(catalog, sample_catalog)
    for _ in range(4):  # max_deliveries is 3 in the test queue
        [delivery] = queue.read(w.consumer, block_ms=100)
        w.handle(delivery)
    record = queue.get_job(job.job_id)
    assert record.state is JobState.FAILED and "simulated outage" in record.error
    assert queue.stats().dead_lettered == 1 and store.count() == 0


def test_the_worker_keeps_going_when_redis_fails_mid_job(parts, queue, sample_catalog, monkeypatch):
    import redis

    catalog, blobs, store, engine = parts
    monkeypatch.setattr(IngestWorker, "_back_off", lambda self: stop.set())
    stop = threading.Event()
    indexer = GarmentIndexer(engine, store, blobs, LIMITS)
    w = IngestWorker(queue, indexer, "w1", stop)
    real_complete = queue.complete
    calls = []

    def flaky_complete(delivery, item_ids):
        calls.append(delivery.job_id)
        if len(calls) == 1:
            raise redis.ConnectionError("connection reset")
        real_complete(delivery, item_ids)

    monkeypatch.setattr(queue, "complete", flaky_complete)
    job = submit_sample(catalog, sample_catalog)
    w.run()  # first attempt breaks on the ack; the loop survives and stops at its back-off
    assert queue.get_job(job.job_id).state is JobState.PROCESSING and queue.stats().pending == 1
    stop.clear()
    monkeypatch.setattr(IngestWorker, "_back_off", lambda self: None)
    [delivery] = queue.read("w1", block_ms=100)
    w.handle(delivery)
    assert queue.get_job(job.job_id).state is JobState.DONE and store.count() == 2


class CountingStore(FlakyStore):
    """A FlakyStore that also records every upsert it is asked for (one list of item ids per call)."""

    def __init__(self, store, failures: int = 0) -> None:
        super().__init__(store, failures)
        self.calls: list[list[str]] = []

    def upsert(self, garments):
        self.calls.append([g.item_id for g in garments])
        super().upsert(garments)


def batch_worker(queue, engine, store, blobs, stop=None):
    indexer = GarmentIndexer(engine, store, blobs, LIMITS)
    return IngestWorker(queue, indexer, "w1", stop or threading.Event(), batch_garments=64, batch_wait_ms=50)


def test_jobs_are_indexed_together_with_one_upsert(parts, queue, sample_catalog):
    catalog, blobs, store, engine = parts
    jobs = [submit_sample(catalog, sample_catalog, f"{i:04d}") for i in range(1, 6)]
    counting = CountingStore(store)
    w = batch_worker(queue, engine, counting, blobs)
    passes = engine.batcher.passes
    deliveries = w._collect()
    assert len(deliveries) == 5
    w.handle_batch(deliveries)
    assert all(queue.get_job(j.job_id).state is JobState.DONE for j in jobs)
    assert len(counting.calls) == 1 and store.count() == len(counting.calls[0])
    assert engine.batcher.passes == passes + 1  # every garment of the batch in one forward pass
    assert queue.stats().pending == 0


def test_a_bad_job_fails_alone_and_the_rest_of_its_batch_is_done(parts, queue, sample_catalog):
    catalog, blobs, store, engine = parts
    jobs = [submit_sample(catalog, sample_catalog, f"{i:04d}") for i in range(1, 4)]
    w = batch_worker(queue, engine, CountingStore(store), blobs)
    deliveries = w._collect()
    bad = deliveries[1].spec.image_digest
    (blobs._root / bad[:2] / bad[2:]).unlink()  # lost blob
    w.handle_batch(deliveries)
    records = [queue.get_job(j.job_id) for j in jobs]
    assert [r.state for r in records] == [JobState.DONE, JobState.FAILED, JobState.DONE]
    assert "missing" in records[1].error
    assert (queue.stats().pending, queue.stats().dead_lettered) == (0, 1)
    assert {g.photo_id for batch in store.scan(256) for g in batch} == {"0001", "0003"}


def test_a_store_outage_leaves_the_whole_batch_pending_until_a_retry_stores_it(
    parts, queue, sample_catalog, monkeypatch
):
    catalog, blobs, store, engine = parts
    monkeypatch.setattr(IngestWorker, "_back_off", lambda self: None)
    jobs = [submit_sample(catalog, sample_catalog, f"{i:04d}") for i in range(1, 5)]
    counting = CountingStore(store, failures=1)
    w = batch_worker(queue, engine, counting, blobs)
    w.handle_batch(w._collect())
    assert all(queue.get_job(j.job_id).state is JobState.QUEUED for j in jobs)
    assert queue.stats().pending == 4 and store.count() == 0
    retry = w._collect()  # its own unacknowledged jobs come back first, all together
    assert sorted(d.job_id for d in retry) == sorted(j.job_id for j in jobs)
    w.handle_batch(retry)
    assert all(queue.get_job(j.job_id).state is JobState.DONE for j in jobs)
    assert queue.stats().pending == 0
    assert len(counting.calls) == 2 and counting.calls[0] == counting.calls[1]  # same ids: idempotent
    assert store.count() == len(counting.calls[1])


def test_the_run_loop_batches_a_backlog(parts, queue, sample_catalog):
    catalog, blobs, store, engine = parts
    jobs = [submit_sample(catalog, sample_catalog, f"{i:04d}") for i in range(1, 9)]
    counting = CountingStore(store)
    stop = threading.Event()
    w = batch_worker(queue, engine, counting, blobs, stop)
    thread = threading.Thread(target=w.run)
    thread.start()
    try:
        wait_until(lambda: all(queue.get_job(j.job_id).state is JobState.DONE for j in jobs), 10,
                   what=f"the run loop to finish the backlog of {len(jobs)} jobs", interval_s=0.05)  # fmt: skip
    finally:
        stop.set()
        thread.join(10)
    assert all(queue.get_job(j.job_id).state is JobState.DONE for j in jobs)
    assert len(counting.calls) < len(jobs)


def run_until(w, condition, seconds: float = 20.0, *, what: str) -> threading.Thread:
    """Run the worker's loop on a thread until condition() holds, failing at once if the loop dies first; the
    thread is returned stopped, so the test can say whether the loop was still alive when asked to stop."""
    thread = threading.Thread(target=w.run)
    thread.start()

    def reached() -> bool:
        if condition():
            return True
        assert thread.is_alive(), "the worker's loop died"
        return False

    try:
        wait_until(reached, seconds, what=what, interval_s=0.05)
        alive = thread.is_alive()
    finally:
        w._stop.set()
        thread.join(10)
    assert alive, "the worker's loop died"
    return thread


def test_a_malformed_stream_entry_is_dead_lettered_and_the_loop_goes_on(parts, queue, sample_catalog):
    """Issue 17 (4): an entry json.loads cannot read used to kill the worker thread."""
    catalog, blobs, store, engine = parts
    queue._redis.xadd(queue.stream, {"job_id": "hand-written", "item_ids": "not json"})
    queue._redis.xadd(queue.stream, {"image": "no job id at all"})
    good = submit_sample(catalog, sample_catalog)
    run_until(worker(queue, engine, store, blobs), lambda: queue.get_job(good.job_id).state is JobState.DONE,
              what="the good job after the malformed entries to be done")  # fmt: skip
    assert queue.get_job(good.job_id).state is JobState.DONE
    letters, count = queue.dead_letters()
    assert count == 2
    assert all(letter.error.startswith("malformed stream entry") for letter in letters)
    assert "names no job_id" in letters[1].error and letters[0].job_id == "hand-written"
    assert queue.stats().queued == queue.stats().pending == 0


def test_a_job_whose_record_expired_is_dead_lettered_not_retried_forever(parts, queue, sample_catalog):
    catalog, blobs, store, engine = parts
    job = submit_sample(catalog, sample_catalog)
    queue._redis.delete(queue._job_key(job.job_id))  # what KLOSET_JOB_TTL_S does to a job left queued too long
    run_until(worker(queue, engine, store, blobs), lambda: queue.dead_letters()[1] == 1,
              what="the expired job to be dead-lettered")  # fmt: skip
    [letter], _ = queue.dead_letters()
    assert letter.job_id == job.job_id and "expired (KLOSET_JOB_TTL_S)" in letter.error
    assert queue.get_job(job.job_id).state is JobState.FAILED and store.count() == 0


class BrokenStore(FlakyStore):
    """A store whose writes raise RuntimeError (a bug, not an outage) until `failures` runs out."""

    def upsert(self, garments):
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("simulated bug in the store")
        self._store.upsert(garments)


def test_a_store_that_raises_runtime_error_leaves_the_job_pending_and_the_worker_alive(parts, queue, sample_catalog):
    catalog, blobs, store, engine = parts
    job = submit_sample(catalog, sample_catalog)
    broken = BrokenStore(store, failures=1)
    run_until(worker(queue, engine, broken, blobs), lambda: queue.get_job(job.job_id).state is JobState.DONE,
              what="the job to be done once the store stops raising")  # fmt: skip
    assert broken.failures == 0 and queue.get_job(job.job_id).state is JobState.DONE and store.count() == 2


def test_a_worker_thread_that_dies_anyway_turns_the_roles_not_serving_and_stops_the_program(
    tmp_path, tiny_model_dir, monkeypatch
):
    """Issue 17 (4): health stayed SERVING while the worker was dead, so nothing restarted it. Now the program
    stops with a reason (`kloset serve` then exits 1) and its roles answer NOT_SERVING meanwhile."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from kloset.core.config import Role
    from kloset.program import Program
    from tests.conftest import role_settings

    proceed = threading.Event()

    def dies(self):
        proceed.wait(30)
        raise RuntimeError("a bug the loop did not catch")

    monkeypatch.setattr(IngestWorker, "run", dies)
    program = Program(role_settings(tmp_path, tiny_model_dir, workers=1), frozenset({Role.INGEST, Role.WORKER}))
    program.start()
    try:
        port = next(s.port for s in program.servers if s.name == Role.INGEST.value)
        health = health_pb2_grpc.HealthStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING
        proceed.set()
        assert program.stopping.wait(10), "the program went on without its worker"
        assert "worker-0 thread raised RuntimeError" in program.failure
        status = health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        program.stop()
