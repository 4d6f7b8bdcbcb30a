"""Core metrics read from the real thing: a real redis-server's queue, a real Qdrant Edge store."""

import numpy as np
import pytest
from prometheus_client import generate_latest

from kloset.core.garments.labels import Group
from kloset.core.index.edge_store import EdgeGarmentStore
from kloset.core.index.store import VISUAL, CatalogGarment, StoreFilter
from kloset.core.ingest.queue import IngestQueue, JobSpec, connect
from kloset.core.telemetry import process_registry

SPEC = JobSpec(image_digest="ab" * 32, label_digest="", item_id="0001", filename="0001.jpg", item_ids=("0001/top",))


def garment(item_id: str, version: str) -> CatalogGarment:
    rng = np.random.default_rng(abs(hash(item_id)) % 1000)
    return CatalogGarment(item_id, Group.TOP, "tee", "white", "x.jpg", version, rng.random(3, dtype=np.float32),
                          rng.random(2, dtype=np.float32))  # fmt: skip


@pytest.fixture
def store(tmp_path):
    s = EdgeGarmentStore.open(path=str(tmp_path / "edge"), dim=3, color_dim=2)
    yield s
    s.close()


def value(registry, name: str, **labels) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_queue_depth_is_read_from_redis_at_each_scrape(queue):
    registry = process_registry(queue=queue)
    for _ in range(3):
        queue.enqueue(SPEC)
    assert value(registry, "kloset_queue_queued_jobs") == 3
    first, _ = queue.read("w1", count=2, block_ms=100)
    assert (value(registry, "kloset_queue_queued_jobs"), value(registry, "kloset_queue_pending_jobs")) == (1, 2)
    queue.fail(first, "bad photo")
    assert value(registry, "kloset_queue_pending_jobs") == 1
    assert value(registry, "kloset_queue_dead_letter_jobs") == 1


def test_jobs_are_counted_by_outcome_when_the_queue_records_it(queue):
    registry = process_registry()
    before = {o: value(registry, "kloset_ingest_jobs_total", outcome=o) for o in ("done", "failed", "retried")}
    for _ in range(3):
        queue.enqueue(SPEC)
    done, failed, retried = queue.read("w1", count=3, block_ms=100)
    queue.complete(done, ["0001/top"])
    queue.fail(failed, "bad photo")
    queue.note_error(retried, "store away")
    after = {o: value(registry, "kloset_ingest_jobs_total", outcome=o) for o in before}
    assert {o: after[o] - before[o] for o in before} == {"done": 1, "failed": 1, "retried": 1}


def test_catalog_size_per_model_version_and_store_latency(store):
    registry = process_registry(store=store)
    upserts = value(registry, "kloset_store_seconds_count", operation="upsert")
    searches = value(registry, "kloset_store_seconds_count", operation="search")
    store.upsert([garment("a/top", "v1"), garment("b/top", "v1"), garment("c/top", "v2")])
    store.candidates(np.ones(3, dtype=np.float32), VISUAL, StoreFilter(), 5)
    assert value(registry, "kloset_catalog_garments", model_version="v1") == 2
    assert value(registry, "kloset_catalog_garments", model_version="v2") == 1
    assert value(registry, "kloset_store_seconds_count", operation="upsert") == upserts + 1
    assert value(registry, "kloset_store_seconds_count", operation="search") == searches + 1


def test_a_scrape_still_answers_when_redis_and_the_store_are_gone(tmp_path):
    gone = IngestQueue(connect("redis://127.0.0.1:1/0"), stream="test:gone")
    closed = EdgeGarmentStore.open(path=str(tmp_path / "edge"), dim=3, color_dim=2)
    closed.close()
    text = generate_latest(process_registry(queue=gone, store=closed)).decode()
    assert "kloset_store_seconds_count" in text and "process_cpu_seconds_total" in text
    assert "kloset_queue_queued_jobs" not in text and "kloset_catalog_garments{" not in text


def test_every_program_gets_a_registry_of_its_own(queue, store):
    """Several Programs in one process (the tests) must not collide on metric names."""
    first, second = process_registry(queue=queue, store=store), process_registry(queue=queue, store=store)
    assert first is not second
    assert value(second, "kloset_queue_queued_jobs") == 0
