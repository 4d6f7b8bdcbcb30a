"""Fault test 2: redis-server is SIGKILLed during an ingest with appendfsync always, then restarted."""

import grpc

from kloset.core.garments.sample import write_sample_catalog
from kloset.core.ingest.embedded_redis import EmbeddedRedis
from kloset.v1 import ingest_pb2
from tests.faults.conftest import Serve, report, stored_item_ids, submit_request, wait_until_drained


def test_every_acknowledged_submit_survives_a_redis_crash(tmp_path, models, serves):
    catalog = tmp_path / "catalog"
    write_sample_catalog(catalog, n=88, seed=11)
    stems = [f"{i:04d}" for i in range(1, 89) if i % 10 != 0]
    redis = EmbeddedRedis(tmp_path / "redis", appendfsync="always")
    url = redis.start()
    serve = Serve(tmp_path / "var", models, KLOSET_REDIS_URL=url)
    serves.append(serve.start())
    stub = serve.ingest()
    acknowledged: dict[str, list[str]] = {}
    refused = 0
    try:
        for i, stem in enumerate(stems):
            if i == 30:
                redis.kill()  # crash: no shutdown, no final fsync
            if i == 45:
                redis.start()  # same folder: the AOF is all it has
            try:
                job = stub.Submit(submit_request(catalog, stem), timeout=10).job
                acknowledged[job.job_id] = list(job.item_ids)
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc.details()
                refused += 1
        jobs = wait_until_drained(stub, list(acknowledged), timeout_s=90)
        stats = stub.GetQueueStats(ingest_pb2.GetQueueStatsRequest(), timeout=10)
        serve.stop()
    finally:
        redis.stop()
    ids = stored_item_ids(tmp_path / "var")
    promised = {item for items in acknowledged.values() for item in items}
    lost = promised - set(ids)
    report(
        "redis-crash",
        submitted=len(stems),
        acknowledged=len(acknowledged),
        refused_while_down=refused,
        indexed=len(ids),
        duplicates=len(ids) - len(set(ids)),
        dead_lettered=stats.dead_lettered,
        lost=len(lost),
    )
    assert refused >= 10  # the crash really happened under load
    assert all(j.state == ingest_pb2.JOB_STATE_DONE for j in jobs.values())
    assert not lost
    assert len(ids) == len(set(ids))
