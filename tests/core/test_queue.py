import time

from kloset.core.queue import JobSpec, JobState

SPEC = JobSpec(image_digest="ab" * 32, label_digest="", item_id="0001", filename="0001.jpg", item_ids=("0001/top",))


def test_enqueue_read_complete(queue):
    job = queue.enqueue(SPEC)
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
    first = queue.enqueue(SPEC)
    queue.enqueue(SPEC)
    [delivery] = queue.read("w1", block_ms=100)
    assert delivery.job_id == first.job_id
    # w1 "restarts": the same consumer name gets its pending job again before anything new
    [again] = queue.read("w1", block_ms=100)
    assert again.job_id == first.job_id and again.deliveries == 2  # re-reads count towards the limit


def test_jobs_of_a_dead_consumer_are_claimed_after_the_idle_time(queue):
    job = queue.enqueue(SPEC)
    queue.read("dead", block_ms=100)
    assert queue.read("alive", block_ms=50) == []  # not idle long enough yet
    time.sleep(0.3)
    [claimed] = queue.read("alive", block_ms=50)
    assert claimed.job_id == job.job_id and claimed.deliveries == 2


def test_fail_moves_the_job_to_the_dead_letters_with_its_reason(queue):
    job = queue.enqueue(SPEC)
    [delivery] = queue.read("w1", block_ms=100)
    queue.fail(delivery, "image is corrupt")
    record = queue.get_job(job.job_id)
    assert (record.state, record.error) == (JobState.FAILED, "image is corrupt")
    stats = queue.stats()
    assert (stats.queued, stats.pending, stats.dead_lettered) == (0, 0, 1)


def test_delivery_limit(queue):
    queue.enqueue(SPEC)
    delivery = None
    for _ in range(4):
        time.sleep(0.25)
        [delivery] = queue.read("w1", block_ms=50)
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
