"""Core metrics read from the real thing: a real redis-server's queue, a real Qdrant Edge store, each test with
a Metrics of its own (the conftest `metrics` fixture), so every count is asserted whole, not as a difference."""

import numpy as np
import pytest
from kloset.services.metrics import watch_process
from prometheus_client import generate_latest

from kloset.core.garments.labels import Group
from kloset.core.index.edge.store import EdgeGarmentStore
from kloset.core.index.store import VISUAL, CatalogGarment, StoreFilter
from kloset.core.ingest.jobs import JobSpec
from kloset.core.ingest.queue import IngestQueue, connect
from kloset.core.telemetry import Metrics

SPEC = JobSpec(image_digest="ab" * 32, label_digest="", item_id="0001", filename="0001.jpg", item_ids=("0001/top",))
OUTCOMES = ("done", "failed", "retried")


def garment(item_id: str, version: str) -> CatalogGarment:
    rng = np.random.default_rng(abs(hash(item_id)) % 1000)
    return CatalogGarment(item_id, Group.TOP, "tee", "white", "x.jpg", version, rng.random(3, dtype=np.float32),
                          rng.random(2, dtype=np.float32))  # fmt: skip


@pytest.fixture
def store(tmp_path, metrics):
    s = EdgeGarmentStore.open(path=str(tmp_path / "edge"), dim=3, color_dim=2, metrics=metrics)
    yield s
    s.close()


def value(registry, name: str, **labels) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def jobs(metrics: Metrics) -> dict[str, float]:
    return {o: value(metrics.registry, "kloset_ingest_jobs_total", outcome=o) for o in OUTCOMES}


def test_queue_depth_is_read_from_redis_at_each_scrape(queue, metrics):
    registry = metrics.registry
    watch_process(registry, queue=queue)
    for _ in range(3):
        queue.enqueue(SPEC)
    assert value(registry, "kloset_queue_queued_jobs") == 3
    first, _ = queue.read("w1", count=2, block_ms=100)
    assert (value(registry, "kloset_queue_queued_jobs"), value(registry, "kloset_queue_pending_jobs")) == (1, 2)
    queue.fail(first, "bad photo")
    assert value(registry, "kloset_queue_pending_jobs") == 1
    assert value(registry, "kloset_queue_dead_letter_jobs") == 1


def test_jobs_are_counted_by_outcome_in_the_queues_own_metrics(queue, metrics):
    assert jobs(metrics) == {"done": 0, "failed": 0, "retried": 0}
    for _ in range(3):
        queue.enqueue(SPEC)
    done, failed, retried = queue.read("w1", count=3, block_ms=100)
    queue.complete(done, ["0001/top"])
    queue.fail(failed, "bad photo")
    queue.note_error(retried, "store away")
    assert jobs(metrics) == {"done": 1, "failed": 1, "retried": 1}


def test_a_queue_counts_into_the_metrics_it_was_handed_and_no_other(queue, metrics, redis_url):
    """Two Programs in one process (the tests) count their own jobs: the isolation the tests rely on."""
    other_metrics = Metrics()
    other = IngestQueue(connect(redis_url), stream=f"{queue.stream}:other", metrics=other_metrics)
    other.ensure_group()
    other.enqueue(SPEC)
    (delivery,) = other.read("w1", count=1, block_ms=100)
    other.complete(delivery, ["0001/top"])
    assert jobs(other_metrics)["done"] == 1
    assert jobs(metrics) == {"done": 0, "failed": 0, "retried": 0}


def test_catalog_size_per_model_version_and_store_latency(store, metrics):
    watch_process(metrics.registry, store=store)
    store.upsert([garment("a/top", "v1"), garment("b/top", "v1"), garment("c/top", "v2")])
    store.candidates(np.ones(3, dtype=np.float32), VISUAL, StoreFilter(), 5)
    assert value(metrics.registry, "kloset_catalog_garments", model_version="v1") == 2
    assert value(metrics.registry, "kloset_catalog_garments", model_version="v2") == 1
    assert value(metrics.registry, "kloset_store_seconds_count", operation="upsert") == 1
    assert value(metrics.registry, "kloset_store_seconds_count", operation="search") == 1


def test_a_scrape_still_answers_when_redis_and_the_store_are_gone(tmp_path, metrics):
    gone = IngestQueue(connect("redis://127.0.0.1:1/0"), stream="test:gone")
    closed = EdgeGarmentStore.open(path=str(tmp_path / "edge"), dim=3, color_dim=2)
    closed.close()
    watch_process(metrics.registry, queue=gone, store=closed)
    text = generate_latest(metrics.registry).decode()
    assert "kloset_store_seconds_count" in text and "process_cpu_seconds_total" in text
    assert "kloset_queue_queued_jobs" not in text and "kloset_catalog_garments{" not in text
