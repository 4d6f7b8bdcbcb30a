"""Fault test 1: `kloset serve` dies mid-ingest (SIGKILL), or a consumer dies holding jobs."""

from collections import Counter

from kloset.core.garments.sample import write_sample_catalog
from kloset.core.ingest.queue import IngestQueue, connect
from kloset.v1 import ingest_pb2
from tests.faults.conftest import Serve, report, stored_item_ids, submit_request, wait_until_drained
from tests.waiting import wait_until


def labelled_stems(n: int) -> list[str]:
    return [f"{i:04d}" for i in range(1, n + 1) if i % 10 != 0]  # every 10th sample photo is dress-only


def test_sigkill_mid_ingest_then_restart_indexes_every_item_exactly_once(tmp_path, models, serves):
    catalog = tmp_path / "catalog"
    write_sample_catalog(catalog, n=222, seed=7)
    stems = labelled_stems(222)
    assert len(stems) == 200
    serve = Serve(tmp_path / "var", models)
    serves.append(serve.start())
    stub = serve.ingest()
    answer = stub.SubmitBatch(iter(submit_request(catalog, s) for s in stems), timeout=120)
    job_ids = [r.job.job_id for r in answer.results]
    assert all(r.job.state == ingest_pb2.JOB_STATE_QUEUED for r in answer.results)
    def well_into_the_batch():
        stats = stub.GetQueueStats(ingest_pb2.GetQueueStatsRequest(), timeout=10)
        return stats if stats.queued <= 150 else None

    before = wait_until(well_into_the_batch, 120, what="the workers to take 50 of the 200 jobs", interval_s=0.05)
    serve.kill()
    serve.start()
    jobs = wait_until_drained(stub, job_ids)
    stats = stub.GetQueueStats(ingest_pb2.GetQueueStatsRequest(), timeout=10)
    serve.stop()
    ids = stored_item_ids(tmp_path / "var")
    expected = {f"{s}/{g}" for s in stems for g in ("top", "bottom")}
    states = Counter(ingest_pb2.JobState.Name(j.state) for j in jobs.values())
    report(
        "crash",
        submitted=len(stems),
        finished_before_kill=200 - before.queued - before.pending,
        indexed=len(ids),
        duplicates=len(ids) - len(set(ids)),
        dead_lettered=stats.dead_lettered,
        lost=len(expected - set(ids)),
    )
    assert states == {"JOB_STATE_DONE": 200}
    assert len(ids) == len(set(ids)) == 400 and set(ids) == expected
    assert (stats.queued, stats.pending, stats.dead_lettered) == (0, 0, 0)


def test_jobs_held_by_a_dead_consumer_are_taken_over_by_a_worker_process(tmp_path, models, serves):
    catalog = tmp_path / "catalog"
    write_sample_catalog(catalog, n=11, seed=3)
    stems = labelled_stems(11)
    shared = {"KLOSET_BLOB_DIR": str(tmp_path / "blobs")}
    ingest = Serve(tmp_path / "a", models, roles="ingest", **shared)
    serves.append(ingest.start())
    job_ids = [ingest.ingest().Submit(submit_request(catalog, s), timeout=30).job.job_id for s in stems]
    redis_url = f"unix://{tmp_path / 'a' / 'redis' / 'redis.sock'}"
    ghost = IngestQueue(connect(redis_url))
    held = ghost.read("ghost", count=4, block_ms=500)  # read and never acknowledged: the consumer "died"
    assert len(held) == 4
    workers = Serve(tmp_path / "b", models, roles="attribute,worker", KLOSET_REDIS_URL=redis_url, **shared)
    serves.append(workers.start())
    jobs = wait_until_drained(ingest.ingest(), job_ids, timeout_s=60)
    assert all(j.state == ingest_pb2.JOB_STATE_DONE for j in jobs.values())
    assert ghost.stats().consumers.get("ghost", 0) == 0
    assert {jobs[d.job_id].attempts for d in held} == {2}  # delivered to the ghost, then to a live worker
    workers.stop()
    ids = stored_item_ids(tmp_path / "b")
    report("takeover", submitted=len(stems), held_by_dead_consumer=len(held), indexed=len(ids), lost=20 - len(ids))
    assert sorted(ids) == sorted(f"{s}/{g}" for s in stems for g in ("top", "bottom"))
