"""Submitting catalog photos and waiting for their jobs: what `kloset ingest` runs, and `kloset bench ingest` and
`kloset bench relevance` with it, so the benchmarks measure the user's path.

Submission is bounded (SUBMITTERS requests in flight) and backs off while the server says RESOURCE_EXHAUSTED or
is unavailable; waiting makes a bounded number of GetJobs calls (waiting.JobWaiter).
"""

import contextvars
import re
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

import grpc
from tenacity import Retrying, retry_if_exception, stop_before_delay, wait_exponential

from kloset.client.progress import Progress
from kloset.client.stubs import CommandError, message_too_large, rpc_message
from kloset.client.waiting import JobWaiter
from kloset.core.garments.folders import CatalogPhoto
from kloset.v1 import ingest_pb2

SUBMITTERS = 4
_RETRYABLE = (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE)
_ITEM_ERRORS = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)


@dataclass
class IngestReport:
    submitted: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    duplicates: int = 0
    unmatched: list[str] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    garments: int = 0  # indexed by the jobs seen done
    status_calls: int = 0  # GetJobs calls made while waiting
    jobs: dict[str, str] = field(default_factory=dict)  # job id -> file name, for jobs still running
    finished: list[ingest_pb2.Job] = field(default_factory=list)  # as they were seen finished (bench ingest's timeline)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, item: str, reason: str) -> None:
        with self.lock:
            self.failed += 1
            self.failures.append({"item": item, "reason": reason})

    def failed_by_reason(self) -> dict[str, int]:
        """Failures grouped by the kind of reason (numbers and quoted names blurred)."""
        kinds = Counter(re.sub(r"'[^']*'|\d+", "…", f["reason"])[:90] for f in self.failures)
        return dict(kinds.most_common())

    def as_json(self) -> dict:
        return {
            "submitted": self.submitted,
            "done": self.done,
            "failed": self.failed,
            "skipped": self.skipped,
            "duplicates": self.duplicates,
            "garments": self.garments,
            "status_calls": self.status_calls,
            "unmatched": self.unmatched,
            "failures": self.failures,
            "failed_by_reason": self.failed_by_reason(),
        }


def submit_all(
    stub, photos: list[CatalogPhoto], report: IngestReport, deadline: float, *, item_id: str = "", force: bool = False,
    show: bool = True,
) -> None:  # fmt: skip
    """Submit every photo, SUBMITTERS at a time, recording each outcome in report (`kloset bench ingest` too)."""
    progress = Progress("submitted", len(photos), enabled=show)
    pool = ThreadPoolExecutor(SUBMITTERS)
    try:
        # Each submission runs in a copy of this thread's context, so it sends the command's request id.
        futures = {
            pool.submit(contextvars.copy_context().run, submit_photo, stub, p, item_id, deadline, force): p
            for p in photos
        }
        for count, future in enumerate(as_completed(futures), start=1):
            _record(report, futures[future], future.result())
            progress.update(count)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        progress.close()


def submit_photo(stub, photo: CatalogPhoto, item_id: str, deadline: float, force: bool = False):
    """Submit one photo, retrying while the server is busy; returns a response, an RpcError or an OSError."""
    try:
        request = ingest_pb2.SubmitRequest(
            image=photo.image.read_bytes(),
            label_json=photo.label.read_bytes() if photo.label else b"",
            item_id=item_id,
            filename=photo.image.name,
            force=force,
        )
    except OSError as exc:
        return exc
    # While the server is busy or away: again after 0.2 s, doubling up to 5 s, as long as the deadline allows.
    retrying = Retrying(
        retry=retry_if_exception(_busy),
        wait=wait_exponential(multiplier=0.2, max=5.0),
        stop=stop_before_delay(max(deadline - time.monotonic(), 0.0)),
        reraise=True,
    )
    try:
        return retrying(stub.Submit, request, timeout=120, wait_for_ready=True)
    except grpc.RpcError as exc:
        if exc.code() in _ITEM_ERRORS or message_too_large(exc):  # this photo's problem; the others may go on
            return exc
        raise CommandError(rpc_message(exc)) from None


def _busy(error: BaseException) -> bool:
    return isinstance(error, grpc.RpcError) and error.code() in _RETRYABLE and not message_too_large(error)


def _record(report: IngestReport, photo: CatalogPhoto, outcome) -> None:
    name = photo.image.name
    if isinstance(outcome, grpc.RpcError):
        report.fail(name, rpc_message(outcome) if message_too_large(outcome) else outcome.details())
    elif isinstance(outcome, OSError):
        report.fail(name, f"cannot read: {outcome}")
    elif outcome.job.state == ingest_pb2.JOB_STATE_SKIPPED:
        report.skipped += 1
    elif outcome.duplicate:
        report.duplicates += 1
    else:
        report.submitted += 1
        report.jobs[outcome.job.job_id] = name


def wait_all(stub, report: IngestReport, deadline: float, *, show: bool = True) -> None:
    """Wait until every submitted job is finished, with GetJobs sweeps (a bounded number of status calls), showing
    the jobs indexed so far; `kloset bench ingest` waits with this too."""
    progress = Progress("indexed", len(report.jobs), enabled=show)
    waiter = JobWaiter(stub)

    def finished(job: ingest_pb2.Job) -> None:
        name = report.jobs.pop(job.job_id)
        report.finished.append(job)
        if job.state == ingest_pb2.JOB_STATE_FAILED:
            report.fail(name, job.error)
        else:
            report.done += 1
            report.garments += len(job.item_ids)
        progress.update(len(report.finished))

    def lost(job_id: str) -> None:
        report.fail(report.jobs.pop(job_id), f"job {job_id} has no record any more (expired, KLOSET_JOB_TTL_S)")

    try:
        waiter.wait(list(report.jobs), deadline, finished, lost)
    finally:
        report.status_calls += waiter.status_calls
        progress.close()
