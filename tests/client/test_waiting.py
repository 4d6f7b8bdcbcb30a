"""The status calls `kloset ingest --wait` makes, whatever the size of the run.

The real-server test (a 200-photo folder, calls counted at the server) is in test_ingest_wait.py; here a run far
bigger than a test can index is played on a clock of its own against an in-memory GetJobs that finishes jobs at a
steady rate, to show the calls per job do not grow with the run.
"""

import grpc
import pytest

from kloset.client.waiting import JOBS_PER_CALL, MAX_POLL_S, MIN_POLL_S, JobWaiter, next_poll_s
from kloset.v1 import ingest_pb2


class SteadyServer:
    """GetJobs over `jobs` jobs of which `rate` finish per second of its clock, oldest first; caps ids per call."""

    def __init__(self, jobs: int, rate: float, max_ids: int = 1000) -> None:
        self.ids = [f"job-{i}" for i in range(jobs)]
        self._index = {job_id: i for i, job_id in enumerate(self.ids)}
        self.rate, self.max_ids, self.now, self.calls = rate, max_ids, 0.0, 0

    def GetJobs(self, request, timeout=None, wait_for_ready=None):
        self.calls += 1
        assert 1 <= len(request.job_ids) <= self.max_ids
        finished = self.rate * self.now
        done, running = ingest_pb2.JOB_STATE_DONE, ingest_pb2.JOB_STATE_PROCESSING
        states = [done if self._index[job_id] < finished else running for job_id in request.job_ids]
        jobs = [ingest_pb2.Job(job_id=j, state=state) for j, state in zip(request.job_ids, states, strict=True)]
        return ingest_pb2.GetJobsResponse(jobs=jobs)

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def wait_on(server: SteadyServer, chunk: int = 1000) -> tuple[int, list[str]]:
    waiter = JobWaiter(server, chunk=chunk, sleep=server.sleep, clock=lambda: server.now)
    seen: list[str] = []
    waiter.wait(server.ids, deadline=1e12, on_finished=lambda job: seen.append(job.job_id), on_lost=seen.append)
    assert waiter.status_calls == server.calls
    return waiter.status_calls, seen


@pytest.mark.parametrize("jobs", [10, 661, 3_305, 20_000])
def test_status_calls_per_job_stay_bounded_whatever_the_run_size(jobs):
    server = SteadyServer(jobs, rate=15.0)
    calls, seen = wait_on(server)
    assert sorted(seen) == sorted(server.ids)  # every job reported once
    assert calls / jobs < 0.5, calls  # polling GetJob made 22 a job at 661 and 44 at 3,305


def test_a_slow_run_is_not_asked_more_often_for_being_slow():
    server = SteadyServer(2_000, rate=2.0)
    calls, _ = wait_on(server)
    assert calls / 2_000 < 0.5


def test_a_server_allowing_fewer_ids_is_asked_in_smaller_chunks():
    server = SteadyServer(300, rate=50.0, max_ids=100)

    def refuse_big(request, timeout=None, wait_for_ready=None):
        if len(request.job_ids) > server.max_ids:
            server.calls += 1  # a refused call is a status call too
            raise TooMany()
        return SteadyServer.GetJobs(server, request)

    server.GetJobs = refuse_big
    calls, seen = wait_on(server, chunk=1000)
    assert sorted(seen) == sorted(server.ids) and calls < 300


class TooMany(grpc.RpcError):
    """What grpc raises when a server refuses a GetJobs for asking too many ids (INVALID_ARGUMENT naming the cap)."""

    def code(self):
        return grpc.StatusCode.INVALID_ARGUMENT

    def details(self):
        return "a GetJobs call may ask for at most 100 job ids (KLOSET_MAX_JOB_IDS)"


def test_next_poll_waits_for_jobs_per_call_finished_jobs_within_bounds():
    # 3 calls a sweep, 15 jobs/s: 3 * JOBS_PER_CALL / 15 seconds
    assert next_poll_s(2_500, 150, 10.0, 1000, 0.5) == pytest.approx(3 * JOBS_PER_CALL / 15)
    assert next_poll_s(10, 10_000, 1.0, 1000, 0.5) == MIN_POLL_S  # fast: never busier than MIN_POLL_S
    assert next_poll_s(10, 1, 1000.0, 1000, 0.5) == MAX_POLL_S  # stalled: asked at least every MAX_POLL_S
    assert next_poll_s(10, 0, 1.0, 1000, 1.0) == 2.0  # nothing finished yet: back off


def test_jobs_unfinished_at_the_deadline_are_named_after_one_last_look():
    from kloset.client.stubs import CommandError

    server = SteadyServer(100, rate=1.0)
    waiter = JobWaiter(server, sleep=server.sleep, clock=lambda: server.now)
    with pytest.raises(CommandError, match=r"^90 jobs still unfinished at the timeout"):
        waiter.wait(server.ids, deadline=10.0, on_finished=lambda job: None, on_lost=lambda job_id: None)
    assert server.now == 10.0
