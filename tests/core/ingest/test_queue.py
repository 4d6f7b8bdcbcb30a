import time

from kloset.core.ingest.jobs import JobSpec, JobState
from tests.waiting import wait_until

SPEC = JobSpec(image_digest="ab" * 32, label_digest="", item_id="0001", filename="0001.jpg", item_ids=("0001/top",))


def test_enqueue_read_complete(queue):
    job, _ = queue.enqueue(SPEC)
    assert queue.get_job(job.job_id).state is JobState.QUEUED
    assert queue.stats().queued == 1
    [delivery] = queue.read("w1", block_ms=100)
    assert delivery.job_id == job.job_id and delivery.spec == SPEC and delivery.deliveries == 1
    queue.mark_processing(delivery)
    stats = queue.stats()
    assert (stats.queued, stats.pending) == (0, 1)
    queue.complete(delivery, ["0001/top"])
    assert queue.get_job(job.job_id).state is JobState.DONE
    stats = queue.stats()
    assert (stats.queued, stats.pending, stats.dead_lettered) == (0, 0, 0)
    assert queue.read("w1", block_ms=50) == []


def test_a_consumer_rereads_its_own_unacknowledged_jobs_first(queue):
    first, _ = queue.enqueue(SPEC)
    queue.enqueue(SPEC)
    [delivery] = queue.read("w1", block_ms=100)
    assert delivery.job_id == first.job_id
    # w1 "restarts": the same consumer name gets its pending job again before anything new
    [again] = queue.read("w1", block_ms=100)
    assert again.job_id == first.job_id and again.deliveries == 2  # re-reads count towards the limit


def test_jobs_of_a_dead_consumer_are_claimed_after_the_idle_time(queue):
    job, _ = queue.enqueue(SPEC)
    read_at = time.monotonic()
    queue.read("dead", block_ms=100)
    assert queue.read("alive", block_ms=50) == []  # not idle long enough yet
    [claimed] = wait_until(lambda: queue.read("alive", block_ms=50), 5, what="the dead consumer's job to be claimed")
    assert time.monotonic() - read_at >= 0.19  # the fixture's claim_idle_ms is 200 (redis counts whole ms)
    assert claimed.job_id == job.job_id and claimed.deliveries == 2


def test_fail_moves_the_job_to_the_dead_letters_with_its_reason(queue):
    job, _ = queue.enqueue(SPEC)
    [delivery] = queue.read("w1", block_ms=100)
    queue.fail(delivery, "image is corrupt")
    record = queue.get_job(job.job_id)
    assert (record.state, record.error) == (JobState.FAILED, "image is corrupt")
    stats = queue.stats()
    assert (stats.queued, stats.pending, stats.dead_lettered) == (0, 0, 1)


def test_delivery_limit(queue):
    queue.enqueue(SPEC)
    deliveries = []
    for _ in range(4):  # w1 re-reads its own unacknowledged job at once: no idle time to wait for
        [delivery] = queue.read("w1", block_ms=50)
        deliveries.append(delivery.deliveries)
    assert deliveries == [1, 2, 3, 4]
    assert queue.exhausted(delivery)


def test_entries_deleted_from_the_stream_are_not_delivered_forever(queue):
    queue.enqueue(SPEC)
    [delivery] = queue.read("w1", block_ms=100)
    queue._redis.xdel(queue.stream, delivery.entry_id)  # e.g. trimmed by an operator
    assert queue.read("w1", block_ms=50) == []
    assert queue.stats().pending == 0


def test_skipped_submissions_are_recorded_but_never_queued(queue):
    job = queue.record_skipped([], "only 원피스")
    assert queue.get_job(job.job_id).state is JobState.SKIPPED
    assert queue.stats().queued == 0


def test_dead_letters_can_be_listed_retried_and_purged(queue):
    jobs = [queue.enqueue(SPEC)[0] for _ in range(3)]
    for _ in jobs:
        [delivery] = queue.read("w1", block_ms=100)
        queue.fail(delivery, f"broken {delivery.job_id}")
    letters, total = queue.dead_letters()
    assert total == 3 and [letter.job_id for letter in letters] == [j.job_id for j in jobs]
    assert letters[0].error == f"broken {jobs[0].job_id}" and letters[0].spec == SPEC
    assert queue.retry_dead_letters([jobs[0].job_id]) == 1
    assert queue.get_job(jobs[0].job_id).state is JobState.QUEUED
    stats = queue.stats()
    assert (stats.queued, stats.dead_lettered) == (1, 2)
    [delivery] = queue.read("w2", block_ms=100)
    assert delivery.job_id == jobs[0].job_id
    assert queue.purge_dead_letters(everything=True) == 2
    assert queue.stats().dead_lettered == 0


def test_retrying_an_unknown_dead_letter_is_not_found(queue):
    import pytest

    from kloset.core.errors import NotFound

    with pytest.raises(NotFound, match="no dead letter"):
        queue.retry_dead_letters(["nope"])


def test_watch_yields_each_change_until_the_job_is_finished(queue):
    import threading

    job, _ = queue.enqueue(SPEC)
    seen = []

    def watch():
        for j in queue.watch(job.job_id, lambda: True, 0.02):
            seen.append(j.state)

    watcher = threading.Thread(target=watch)
    watcher.start()
    wait_until(lambda: JobState.QUEUED in seen, 5, what="the watcher to see the job queued", detail=lambda: seen)
    [delivery] = queue.read("w1", block_ms=100)
    queue.mark_processing(delivery)
    wait_until(lambda: JobState.PROCESSING in seen, 5, what="the watcher to see the job processing",
               detail=lambda: seen)  # fmt: skip
    queue.complete(delivery, ["0001/top"])
    watcher.join(timeout=5)
    assert seen[0] is JobState.QUEUED and seen[-1] is JobState.DONE and JobState.PROCESSING in seen


def test_concurrent_twins_queue_the_content_once(queue):
    from concurrent.futures import ThreadPoolExecutor

    from kloset.core.ingest.queue import IngestQueue, connect

    # each thread on its own connection, as separate ingest processes would be
    url = queue._redis.connection_pool.connection_kwargs["path"]
    twins = [IngestQueue(connect(f"unix://{url}"), stream=queue.stream) for _ in range(8)]
    rounds = 40
    for _ in range(rounds):
        content = f"content-{time.monotonic_ns()}"
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda q, c=content: q.enqueue(SPEC, content_key=c), twins))
        originals = {job.job_id for job, duplicate in results if not duplicate}
        assert len(originals) == 1
        assert {job.job_id for job, _ in results} == originals  # every twin points at the one queued job
    assert queue.stats().queued == rounds


def test_job_ids_a_caller_sent_are_quoted_only_in_part(queue):
    import pytest

    from kloset.core.errors import NotFound

    with pytest.raises(NotFound, match=r"no job 'jjj.*… \(20000 characters\)") as info:
        queue.get_job("j" * 20_000)
    assert len(str(info.value)) < 300
    with pytest.raises(
        NotFound, match=r"no dead letter for job\(s\) '0+… \(5000 characters\), .* and 995 more"
    ) as info:
        queue.retry_dead_letters([f"{i:0{5000}d}" for i in range(1_000)])
    assert len(str(info.value)) < 600


def test_get_jobs_answers_many_jobs_in_one_round_trip_and_each_id_once(redis_url, monkeypatch):
    import uuid

    from kloset.core.ingest.queue import IngestQueue, connect

    client = connect(redis_url)
    queue = IngestQueue(client, stream=f"test:{uuid.uuid4().hex[:8]}")
    queue.ensure_group()
    jobs = [queue.enqueue(SPEC, force=True)[0] for _ in range(25)]
    [delivery] = queue.read("w1", count=1, block_ms=100)
    queue.complete(delivery, ["0001/top"])
    # Every command but a pipeline's goes through execute_command: none may be sent one by one.
    single = []
    monkeypatch.setattr(client, "execute_command", lambda *args, **kw: single.append(args))
    asked = [jobs[3].job_id, "nope", jobs[0].job_id, jobs[3].job_id, *(j.job_id for j in jobs[5:])]
    found, missing = queue.get_jobs(asked)
    assert single == []
    assert [j.job_id for j in found] == [jobs[3].job_id, jobs[0].job_id, *(j.job_id for j in jobs[5:])]
    assert missing == ["nope"]
    assert {j.job_id: j.state for j in found}[delivery.job_id] is JobState.DONE
    assert all(j.state is JobState.QUEUED for j in found if j.job_id != delivery.job_id)
    assert queue.get_jobs([]) == ([], [])
