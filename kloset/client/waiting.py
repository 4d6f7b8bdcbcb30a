"""Waiting on many ingest jobs with a bounded number of status calls, whatever the size of the run.

Each sweep asks for every unfinished job with GetJobs, in chunks of up to `chunk` ids (the server's
KLOSET_MAX_JOB_IDS). The pause between sweeps grows with the calls a sweep takes and shrinks with the rate jobs
finish at, so that each call sees about JOBS_PER_CALL jobs finish: a run of 600 jobs or 60,000 makes about
1 / JOBS_PER_CALL status calls per job, never one call per job per sweep (what polling GetJob did: its calls grew
with the square of the run). The pause stays within [MIN_POLL_S, MAX_POLL_S], so a fast run finishes without
waiting long, and a stalled one is asked at most every MAX_POLL_S.
"""

import math
import time
from collections.abc import Callable, Sequence

import grpc

from kloset.client.stubs import CommandError, rpc_message
from kloset.v1 import ingest_pb2

MAX_JOB_IDS = 1000  # ids per GetJobs call: the server's default KLOSET_MAX_JOB_IDS (halved if it allows fewer)
JOBS_PER_CALL = 10  # finished jobs each status call should see, at the rate seen so far
MIN_POLL_S = 0.5
MAX_POLL_S = 30.0
FINISHED = (ingest_pb2.JOB_STATE_DONE, ingest_pb2.JOB_STATE_FAILED, ingest_pb2.JOB_STATE_SKIPPED)
_STATUS_TIMEOUT_S = 30


def next_poll_s(pending: int, finished: int, elapsed_s: float, chunk: int, previous_s: float) -> float:
    """Seconds until the next sweep: enough for each of its ceil(pending / chunk) calls to see JOBS_PER_CALL jobs
    finish at the rate seen so far (finished / elapsed_s); with nothing finished yet, twice the previous pause."""
    if finished <= 0 or elapsed_s <= 0:
        return min(max(previous_s * 2, MIN_POLL_S), MAX_POLL_S)
    wanted = math.ceil(pending / chunk) * JOBS_PER_CALL / (finished / elapsed_s)
    return min(max(wanted, MIN_POLL_S), MAX_POLL_S)


class JobWaiter:
    """Sweeps job ids with GetJobs until each is finished; counts the status calls it made."""

    def __init__(
        self,
        stub,
        *,
        chunk: int = MAX_JOB_IDS,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stub = stub
        self._chunk = chunk
        self._sleep = sleep
        self._clock = clock
        self.status_calls = 0

    def wait(
        self,
        job_ids: Sequence[str],
        deadline: float,
        on_finished: Callable[[ingest_pb2.Job], None],
        on_lost: Callable[[str], None],
    ) -> None:
        """Until every job is finished: on_finished(job) once per finished job, on_lost(job_id) once per job whose
        record is gone (expired, or never there). Raises CommandError at the deadline, naming how many are left."""
        pending = list(dict.fromkeys(job_ids))
        started, finished, pause = self._clock(), 0, MIN_POLL_S / 2
        while pending:
            jobs, missing = self.sweep(pending)
            for job in jobs:
                on_finished(job)
            for job_id in missing:
                on_lost(job_id)
            done = {job.job_id for job in jobs} | set(missing)
            pending = [job_id for job_id in pending if job_id not in done]
            finished += len(done)
            if not pending:
                return
            now = self._clock()
            if now >= deadline:
                raise CommandError(f"{len(pending)} jobs still unfinished at the timeout; they stay queued")
            pause = next_poll_s(len(pending), finished, now - started, self._chunk, pause)
            self._sleep(min(pause, deadline - now))  # one last look at the deadline

    def sweep(self, job_ids: Sequence[str]) -> tuple[list[ingest_pb2.Job], list[str]]:
        """One look at every job: (the finished ones, the ids with no record), in ceil(len / chunk) calls."""
        finished: list[ingest_pb2.Job] = []
        missing: list[str] = []
        start = 0
        while start < len(job_ids):
            batch = job_ids[start : start + self._chunk]
            try:
                answer = self._get_jobs(batch)
            except _ChunkTooBig:
                self._chunk = max(1, self._chunk // 2)
                continue
            finished.extend(job for job in answer.jobs if job.state in FINISHED)
            missing.extend(answer.not_found)
            start += len(batch)
        return finished, missing

    def _get_jobs(self, job_ids: Sequence[str]) -> ingest_pb2.GetJobsResponse:
        self.status_calls += 1
        try:
            request = ingest_pb2.GetJobsRequest(job_ids=job_ids)
            return self._stub.GetJobs(request, timeout=_STATUS_TIMEOUT_S, wait_for_ready=True)
        except grpc.RpcError as exc:
            # A server with a lower KLOSET_MAX_JOB_IDS says so: ask for fewer ids at a time.
            refused = exc.code() == grpc.StatusCode.INVALID_ARGUMENT and "KLOSET_MAX_JOB_IDS" in (exc.details() or "")
            if refused and len(job_ids) > 1:
                raise _ChunkTooBig from None
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                raise CommandError("the ingest server has no GetJobs (it is older than this kloset): upgrade it, "
                                   "or run without --wait and follow the jobs with GetJob") from None  # fmt: skip
            raise CommandError(rpc_message(exc)) from None


class _ChunkTooBig(Exception):
    """The server refused a GetJobs call for asking for too many ids."""
