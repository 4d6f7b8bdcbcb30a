"""Issue 17 (6): requests that could exhaust a server are bounded. Real gRPC on free ports, a real redis-server,
real threads: a dozen watchers, an endless SubmitBatch, concurrent submitters against the backlog."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest

from kloset.core.config import Role
from kloset.core.garments.images import encode_jpeg
from kloset.v1 import ingest_pb2, ingest_pb2_grpc
from tests.conftest import role_settings
from tests.waiting import wait_until

WATCHERS = 2
BATCH_ITEMS = 3


@pytest.fixture(scope="module")
def ingest(tmp_path_factory, tiny_model_dir):
    """The ingest role alone (no workers: every job stays queued, so a watcher never ends by itself)."""
    from kloset.program import Program

    settings = role_settings(tmp_path_factory.mktemp("bounds"), tiny_model_dir, workers=0, grpc_threads=4,
                             max_watchers=WATCHERS, max_batch_items=BATCH_ITEMS)  # fmt: skip
    program = Program(settings, frozenset({Role.INGEST}))
    program.start()
    port = next(s.port for s in program.servers if s.name == Role.INGEST.value)
    yield ingest_pb2_grpc.IngestServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
    program.stop()


def photo(seed: int) -> bytes:
    return encode_jpeg(np.random.default_rng(seed).integers(0, 255, (64, 48, 3), dtype=np.uint8))


def test_watchers_are_capped_and_submit_is_answered_while_they_are_open(ingest):
    job = ingest.Submit(ingest_pb2.SubmitRequest(image=photo(1)), timeout=10).job
    # The first watchers are answered before the rest are opened: calls opened together reach the server in any
    # order, and the cap admits whichever come first.
    holders = [ingest.WatchJob(ingest_pb2.WatchJobRequest(job_id=job.job_id)) for _ in range(WATCHERS)]
    first = [next(stream) for stream in holders]  # these hold their places
    assert all(answer.job.job_id == job.job_id for answer in first)
    others = [ingest.WatchJob(ingest_pb2.WatchJobRequest(job_id=job.job_id)) for _ in range(10)]
    refused = []
    for stream in others:
        with pytest.raises(grpc.RpcError) as info:
            next(stream)
        refused.append(info.value)
    assert {e.code() for e in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert "KLOSET_MAX_WATCHERS" in refused[0].details()
    started = time.monotonic()
    ingest.GetQueueStats(ingest_pb2.GetQueueStatsRequest(), timeout=5)
    ingest.Submit(ingest_pb2.SubmitRequest(image=photo(2)), timeout=5)
    assert time.monotonic() - started < 5
    for stream in holders:
        stream.cancel()

    def a_watcher_is_admitted() -> bool:
        again = ingest.WatchJob(ingest_pb2.WatchJobRequest(job_id=job.job_id))
        try:
            answer = next(again)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise
            return False  # the server has not seen the cancels yet
        finally:
            again.cancel()
        assert answer.job.job_id == job.job_id
        return True

    wait_until(a_watcher_is_admitted, 10, what="cancelled watchers to give their places back", interval_s=0.05)


def test_submit_batch_takes_up_to_its_item_cap_and_refuses_more(ingest):
    requests = [ingest_pb2.SubmitRequest(image=photo(100 + i), item_id=f"batch-{i}") for i in range(BATCH_ITEMS)]
    answer = ingest.SubmitBatch(iter(requests), timeout=10)
    assert len(answer.results) == BATCH_ITEMS and all(r.job.job_id for r in answer.results)
    endless = (ingest_pb2.SubmitRequest(image=photo(200 + i), item_id=f"more-{i}") for i in range(10**6))
    with pytest.raises(grpc.RpcError) as info:
        ingest.SubmitBatch(endless, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"at most {BATCH_ITEMS} photos (KLOSET_MAX_BATCH_ITEMS)" in info.value.details()


def test_concurrent_submitters_never_overshoot_the_backlog(redis_url, tmp_path):
    from kloset.core.errors import Overloaded
    from kloset.core.ingest.blobs import BlobStore
    from kloset.core.ingest.catalog import CatalogIngest, Submission
    from kloset.core.ingest.queue import IngestQueue, connect
    from kloset.core.limits import InputLimits

    queue = IngestQueue(connect(redis_url), stream=f"bounds:{time.monotonic_ns()}", max_backlog=3)
    queue.ensure_group()
    catalog = CatalogIngest(queue, BlobStore(tmp_path / "blobs"), InputLimits(max_pixels=10**6))
    go = threading.Event()

    def submit(i: int):
        go.wait()
        try:
            return catalog.submit(Submission(image=photo(300 + i), item_id=f"c{i}"))
        except Overloaded as exc:
            return exc

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(submit, i) for i in range(8)]
        go.set()
        outcomes = [f.result() for f in futures]
    assert queue.stats().queued == 3
    assert sum(isinstance(o, Overloaded) for o in outcomes) == 5
