"""The ingest queue on Redis Streams, with a job record per submission.

A job is XADDed with its record in one transaction; a worker reads it through a consumer group and the entry
is acknowledged (and deleted) only after the garments are in the store. Entries that a dead consumer held are
claimed by others after `claim_idle_ms`; a job delivered `max_deliveries` times goes to the dead letters.
The stream is never trimmed: acknowledged entries are deleted one by one, so XLEN is the backlog. The records
it reads and writes (jobs, deliveries, dead letters) are jobs.py.
"""

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from enum import StrEnum

import redis

from kloset.core import request_context
from kloset.core.errors import NotFound, Overloaded, Unavailable, quoted
from kloset.core.ingest.jobs import TERMINAL_STATES, DeadLetter, Delivery, Job, JobSpec, JobState, QueueStats
from kloset.core.telemetry import Metrics

log = logging.getLogger(__name__)

_MAX_JOBS_NAMED = 5  # in an error message about job ids a caller sent


def connect(url: str, password: str | None = None, ca_file: str | None = None) -> redis.Redis:
    """A Redis client for kloset's queue (decoded strings, bounded timeouts).

    password: when given, it wins over one in the URL. A rediss:// URL speaks TLS, verifying the server against
    ca_file when given, else the system's trust store."""
    options: dict = {"decode_responses": True, "socket_timeout": 30, "health_check_interval": 30}
    if password is not None:
        options["password"] = password
    if url.startswith("rediss://") and ca_file is not None:
        options["ssl_ca_certs"] = ca_file
    return redis.Redis.from_url(url, **options)


class IngestQueue:
    def __init__(
        self,
        client: redis.Redis,
        *,
        stream: str = "kloset:ingest",
        group: str = "workers",
        job_ttl_s: int = 7 * 24 * 3600,
        claim_idle_ms: int = 60_000,
        max_deliveries: int = 5,
        max_backlog: int = 10_000,
        metrics: Metrics | None = None,
    ) -> None:
        self._redis = client
        self._metrics = metrics or Metrics()
        self.stream = stream
        self.dead_letter_stream = f"{stream}:dead"
        self.group = group
        self._job_ttl_s = job_ttl_s
        self._claim_idle_ms = claim_idle_ms
        self._max_deliveries = max_deliveries
        self._max_backlog = max_backlog

    def _job_key(self, job_id: str) -> str:
        return f"{self.stream}:job:{job_id}"

    def ensure_group(self) -> None:
        """Create the stream and consumer group if needed; entries already in the stream will be delivered."""
        try:
            self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        except redis.RedisError as exc:
            raise Unavailable(f"Redis did not answer: {exc}") from None

    def enqueue(
        self, spec: JobSpec, content_key: str = "", *, still_indexed: Callable[[Job], bool] | None = None,
        force: bool = False,
    ) -> tuple[Job, bool]:  # fmt: skip
        """Record the job and XADD it atomically; returns (job, duplicate).

        Content already queued or indexed (same content_key, its job not failed) is not queued again: the
        earlier job comes back with duplicate=True; unless force, or the earlier job is done and still_indexed
        says its garments are no longer in the catalog (deleted, or lost with their store), so that re-running
        an ingest always brings them back. Raises Overloaded when the backlog is at its limit.
        """
        try:
            job = self._new_job(JobState.QUEUED, spec.item_ids)
            if not spec.request_id:  # the job belongs to the request that submits it
                spec = replace(spec, request_id=request_context.request_id() or "")
            content = f"{self.stream}:content:{content_key}" if content_key else ""
            return self._enqueue_once(job, spec, content, still_indexed, force)
        except redis.RedisError as exc:
            raise Unavailable(f"could not queue the job: {exc}") from None

    def _enqueue_once(
        self, job: Job, spec: JobSpec, content: str, still_indexed: Callable[[Job], bool] | None, force: bool
    ) -> tuple[Job, bool]:
        """Write the record, the stream entry and the content's owner in one transaction.

        WATCH on the stream and the content key makes "is there room?", "is this content already queued?" and
        "queue it" one step: concurrent submitters never overshoot KLOSET_MAX_BACKLOG, and a concurrent twin never
        sees an owner whose job record does not exist yet.
        """
        with self._redis.pipeline(transaction=True) as tx:
            while True:
                try:
                    tx.watch(self.stream, *([content] if content else []))
                    backlog = tx.xlen(self.stream)
                    if backlog >= self._max_backlog:
                        raise Overloaded(f"the queue holds {backlog} unprocessed jobs (limit {self._max_backlog}, "
                                         "KLOSET_MAX_BACKLOG); retry later")  # fmt: skip
                    if content:
                        earlier = None if force else self._live_owner(tx.get(content))
                        gone = earlier is not None and earlier.state is JobState.DONE and still_indexed is not None \
                            and not still_indexed(earlier)  # fmt: skip
                        if earlier is not None and not gone:
                            return earlier, True
                    tx.multi()
                    self._write_job(tx, job, spec.fields())
                    tx.xadd(self.stream, {"job_id": job.job_id, **spec.fields()})
                    if content:
                        tx.set(content, job.job_id, ex=self._job_ttl_s)
                    tx.execute()
                    return job, False
                except redis.WatchError:
                    continue  # a twin claimed the content meanwhile: look again

    def _live_owner(self, job_id: str | None) -> Job | None:
        """The earlier job that owns some content, unless it failed or its record expired (then content is free)."""
        if not job_id:
            return None
        try:
            earlier = self.get_job(job_id)
        except NotFound:
            return None
        return earlier if earlier.state is not JobState.FAILED else None

    def record_skipped(self, item_ids: Sequence[str], reason: str) -> Job:
        """Keep a record of a submission that had nothing to index, so GetJob can explain it."""
        job = self._new_job(JobState.SKIPPED, tuple(item_ids), error=reason)
        try:
            with self._redis.pipeline(transaction=True) as tx:
                self._write_job(tx, job, {})
                tx.execute()
        except redis.RedisError as exc:
            raise Unavailable(f"could not record the job: {exc}") from None
        return job

    def get_job(self, job_id: str) -> Job:
        """The job's record; NotFound if unknown or past its retention time."""
        try:
            record = self._redis.hgetall(self._job_key(job_id)) if job_id else {}
        except redis.RedisError as exc:
            raise Unavailable(f"Redis did not answer: {exc}") from None
        if not record:
            raise NotFound(f"no job {quoted(job_id)} (unknown, or expired after its retention time)")
        return Job.from_record(job_id, record)

    def get_jobs(self, job_ids: Sequence[str]) -> tuple[list[Job], list[str]]:
        """Many jobs' records in one Redis round trip: (the jobs found, the ids not found), each in the order asked,
        a repeated id answered once. The caller bounds how many ids one call reads (KLOSET_MAX_JOB_IDS)."""
        wanted = [job_id for job_id in dict.fromkeys(job_ids) if job_id]
        try:
            with self._redis.pipeline(transaction=False) as p:
                for job_id in wanted:
                    p.hgetall(self._job_key(job_id))
                records = p.execute() if wanted else []
        except redis.RedisError as exc:
            raise Unavailable(f"Redis did not answer: {exc}") from None
        found = [Job.from_record(job_id, record) for job_id, record in zip(wanted, records, strict=True) if record]
        missing = [job_id for job_id, record in zip(wanted, records, strict=True) if not record]
        return found, missing

    def watch(self, job_id: str, active: Callable[[], bool], poll_s: float = 0.2) -> Iterator[Job]:
        """Yield the job's record whenever it changes, until it is finished or `active()` turns false."""
        last = None
        while active():
            job = self.get_job(job_id)
            if job != last:
                yield job
                last = job
            if job.state.value in TERMINAL_STATES:
                return
            time.sleep(poll_s)

    def read(self, consumer: str, count: int = 1, block_ms: int = 1000) -> list[Delivery]:
        """Next jobs for this consumer: its own unacknowledged ones first, then abandoned ones, then new ones."""
        try:
            own = self._redis.xreadgroup(self.group, consumer, {self.stream: "0"}, count=count)
            deliveries = self._deliveries(own)
            if deliveries:
                return deliveries
            claimed = self._redis.xautoclaim(
                self.stream, self.group, consumer, min_idle_time=self._claim_idle_ms, start_id="0-0", count=count
            )
            deliveries = self._deliveries([[self.stream, claimed[1]]])
            if deliveries:
                return deliveries
            fresh = self._redis.xreadgroup(self.group, consumer, {self.stream: ">"}, count=count, block=block_ms)
            return self._deliveries(fresh)
        except redis.RedisError as exc:
            raise Unavailable(f"Redis did not answer: {exc}") from None

    def read_new(self, consumer: str, count: int, block_ms: int) -> list[Delivery]:
        """Only jobs never delivered before: for topping up a batch without seeing its own jobs again."""
        try:
            fresh = self._redis.xreadgroup(self.group, consumer, {self.stream: ">"}, count=count, block=block_ms)
            return self._deliveries(fresh)
        except redis.RedisError as exc:
            raise Unavailable(f"Redis did not answer: {exc}") from None

    def _deliveries(self, response) -> list[Delivery]:
        entries = [entry for _, stream_entries in response or [] for entry in stream_entries]
        if not entries:
            return []
        gone = [entry_id for entry_id, fields in entries if not fields]
        if gone:  # deleted by trimming or by hand: nothing left to process, so stop them coming back
            self._redis.xack(self.stream, self.group, *gone)
        live = [(entry_id, fields) for entry_id, fields in entries if fields]
        counts = self._delivery_counts([entry_id for entry_id, _ in live])
        deliveries = []
        for entry_id, fields in live:
            try:
                if not fields.get("job_id"):
                    raise ValueError("it names no job_id")
                spec = JobSpec.from_fields(fields)
            except (ValueError, TypeError) as exc:  # written by hand or by a broken client: never retried
                self._poisoned(entry_id, fields, f"malformed stream entry {entry_id}: {str(exc)[:200]}")
                continue
            deliveries.append(Delivery(entry_id, fields["job_id"], spec, counts.get(entry_id, 1)))
        return deliveries

    def _poisoned(self, entry_id: str, fields: dict[str, str], reason: str) -> None:
        """Move an entry no worker can read to the dead letters (its fields kept as they were, under "raw") and
        acknowledge it."""
        log.warning("%s", reason)
        letter = {"job_id": fields.get("job_id", ""), "error": reason, "raw": json.dumps(fields)[:10_000]}
        self._dead_letter(entry_id, letter)

    def _dead_letter(self, entry_id: str, letter: dict[str, str], record=None) -> None:
        """XADD a letter to the dead letters, then XACK and XDEL its entry, in one transaction; record(tx), when
        given, updates the job's record in the same transaction."""
        with self._redis.pipeline(transaction=True) as tx:
            tx.xadd(self.dead_letter_stream, {**letter, "failed_at": repr(time.time())})
            if record is not None:
                record(tx)
            tx.xack(self.stream, self.group, entry_id)
            tx.xdel(self.stream, entry_id)
            tx.execute()
        self._metrics.jobs_failed.inc()

    def job_exists(self, job_id: str) -> bool:
        """Whether the job's record is still kept (KLOSET_JOB_TTL_S)."""
        try:
            return bool(job_id) and bool(self._redis.exists(self._job_key(job_id)))
        except redis.RedisError as exc:
            raise Unavailable(f"Redis did not answer: {exc}") from None

    def _delivery_counts(self, entry_ids: Sequence[str]) -> dict[str, int]:
        counts = {}
        for entry_id in entry_ids:
            info = self._redis.xpending_range(self.stream, self.group, min=entry_id, max=entry_id, count=1)
            if info:
                counts[entry_id] = int(info[0]["times_delivered"])
        return counts

    def exhausted(self, delivery: Delivery) -> bool:
        """True when the job has been delivered as often as allowed and must not be tried again."""
        return delivery.deliveries > self._max_deliveries

    def mark_processing(self, delivery: Delivery) -> None:
        """Record that a worker started the job (and how often it has been delivered)."""
        self._update(delivery.job_id, state=JobState.PROCESSING, attempts=delivery.deliveries)

    def complete(self, delivery: Delivery, item_ids: Sequence[str]) -> None:
        """Acknowledge a job whose garments are stored, and record it done."""
        with self._redis.pipeline(transaction=True) as tx:
            self._update(delivery.job_id, tx=tx, state=JobState.DONE, item_ids=json.dumps(list(item_ids)), error="")
            tx.xack(self.stream, self.group, delivery.entry_id)
            tx.xdel(self.stream, delivery.entry_id)
            tx.execute()
        self._metrics.jobs_done.inc()

    def fail(self, delivery: Delivery, reason: str) -> None:
        """Move a job that cannot succeed to the dead letters (before acknowledging it) and record why."""
        letter = {"job_id": delivery.job_id, "error": reason, **delivery.spec.fields()}
        self._dead_letter(delivery.entry_id, letter, lambda tx: self._update(
            delivery.job_id, tx=tx, state=JobState.FAILED, error=reason, attempts=delivery.deliveries))  # fmt: skip

    def note_error(self, delivery: Delivery, reason: str) -> None:
        """Record a transient failure; the entry stays pending and is retried after the claim idle time."""
        self._update(delivery.job_id, state=JobState.QUEUED, error=reason, attempts=delivery.deliveries)
        self._metrics.jobs_retried.inc()

    def dead_letters(self, limit: int = 100) -> tuple[list[DeadLetter], int]:
        """The oldest dead letters (at most limit) and how many there are."""
        try:
            entries = self._redis.xrange(self.dead_letter_stream, count=limit)
            total = self._redis.xlen(self.dead_letter_stream)
        except redis.RedisError as exc:
            raise Unavailable(f"Redis did not answer: {exc}") from None
        return [DeadLetter.from_fields(entry_id, fields) for entry_id, fields in entries], int(total)

    def retry_dead_letters(self, job_ids: Sequence[str] = (), *, everything: bool = False) -> int:
        """Queue dead-lettered jobs again, each moved in one transaction (never in both streams, never lost)."""
        retried = 0
        for letter in self._select_dead(job_ids, everything):
            with self._redis.pipeline(transaction=True) as tx:
                job = Job(job_id=letter.job_id, state=JobState.QUEUED, item_ids=letter.spec.item_ids,
                          created_at=time.time(), updated_at=time.time())  # fmt: skip
                self._write_job(tx, job, letter.spec.fields())
                tx.xadd(self.stream, {"job_id": letter.job_id, **letter.spec.fields()})
                tx.xdel(self.dead_letter_stream, letter.entry_id)
                tx.execute()
            retried += 1
        return retried

    def purge_dead_letters(self, job_ids: Sequence[str] = (), *, everything: bool = False) -> int:
        """Drop dead letters for good; returns how many."""
        letters = self._select_dead(job_ids, everything)
        if letters:
            self._redis.xdel(self.dead_letter_stream, *[letter.entry_id for letter in letters])
        return len(letters)

    def _select_dead(self, job_ids: Sequence[str], everything: bool) -> list[DeadLetter]:
        wanted = set(job_ids)
        try:
            entries = self._redis.xrange(self.dead_letter_stream)
        except redis.RedisError as exc:
            raise Unavailable(f"Redis did not answer: {exc}") from None
        letters = [DeadLetter.from_fields(entry_id, fields) for entry_id, fields in entries]
        chosen = letters if everything else [letter for letter in letters if letter.job_id in wanted]
        missing = wanted - {letter.job_id for letter in chosen}
        if missing and not everything:
            shown = ", ".join(quoted(job_id) for job_id in sorted(missing)[:_MAX_JOBS_NAMED])
            more = f" and {len(missing) - _MAX_JOBS_NAMED} more" if len(missing) > _MAX_JOBS_NAMED else ""
            raise NotFound(f"no dead letter for job(s) {shown}{more}")
        return chosen

    def stats(self) -> QueueStats:
        """Queued (not yet delivered), pending (delivered, unacknowledged) and dead-lettered jobs."""
        try:
            self.ensure_group()
            with self._redis.pipeline(transaction=False) as p:
                p.xlen(self.stream)
                p.xpending(self.stream, self.group)
                p.xlen(self.dead_letter_stream)
                length, pending, dead = p.execute()
        except redis.RedisError as exc:
            raise Unavailable(f"Redis did not answer: {exc}") from None
        pending_count = int(pending["pending"])
        consumers = {c["name"]: int(c["pending"]) for c in pending.get("consumers") or []}
        return QueueStats(
            queued=max(0, int(length) - pending_count),
            pending=pending_count,
            dead_lettered=int(dead),
            consumers=consumers,
        )

    def _new_job(self, state: JobState, item_ids: tuple[str, ...], error: str = "") -> Job:
        now = time.time()
        return Job(job_id=uuid.uuid4().hex, state=state, item_ids=item_ids, error=error, created_at=now, updated_at=now)

    def _write_job(self, tx, job: Job, spec_fields: dict[str, str]) -> None:
        key = self._job_key(job.job_id)
        tx.hset(
            key,
            mapping={
                **spec_fields,
                "state": job.state.value,
                "item_ids": json.dumps(list(job.item_ids)),
                "error": job.error,
                "attempts": 0,
                "created_at": repr(job.created_at),
                "updated_at": repr(job.updated_at),
            },
        )
        tx.expire(key, self._job_ttl_s)

    def _update(self, job_id: str, tx=None, **values) -> None:
        key = self._job_key(job_id)
        mapping = {k: (v.value if isinstance(v, StrEnum) else v) for k, v in values.items()}
        mapping["updated_at"] = repr(time.time())
        target = tx if tx is not None else self._redis
        target.hset(key, mapping=mapping)
        target.expire(key, self._job_ttl_s)
