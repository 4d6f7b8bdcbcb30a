"""`kloset ingest`: submit a K-Fashion folder or one image, optionally wait until every job is finished.

Submission is bounded (a few requests in flight), backs off while the server says RESOURCE_EXHAUSTED or is
unavailable, and can be interrupted and re-run: content that is already queued or indexed comes back as a
duplicate and is not processed again.
"""

import contextvars
import json
import re
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field

import grpc

from kloset.cli.client import Clients, CommandError, message_too_large, rpc_message
from kloset.cli.progress import Progress
from kloset.cli.waiting import JobWaiter
from kloset.core.garments.folders import CatalogPhoto, scan_catalog
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


def run_ingest(clients: Clients, args) -> int:
    if not args.path.exists():
        raise CommandError(f"{args.path} does not exist")
    if args.label and not args.path.is_file():
        raise CommandError("--label goes with a single image, not a folder")
    report = IngestReport()
    photos = _photos(args, report)
    stub = clients.ingest()
    deadline = time.monotonic() + args.timeout
    try:
        submit_all(stub, photos, report, deadline, item_id=args.item_id or "", force=args.force, show=not args.quiet)
        if args.wait:
            wait_all(stub, report, deadline, show=not args.quiet)
    except KeyboardInterrupt:
        print("\ninterrupted: what was submitted stays queued; run the same command again to continue",
              file=sys.stderr)  # fmt: skip
        _print(report, args.json)
        return 130
    _print(report, args.json)
    return 1 if report.failed else 0


def _photos(args, report: IngestReport) -> list[CatalogPhoto]:
    if args.path.is_file():
        return [CatalogPhoto(args.path, args.label)]
    scan = scan_catalog(args.path)
    photos = scan.photos
    if args.allow_unlabeled:
        photos = sorted([*photos, *(CatalogPhoto(i, None) for i in scan.unmatched_images)], key=lambda p: p.image)
    else:
        report.unmatched.extend(str(p) for p in scan.unmatched_images)
    report.unmatched.extend(str(p) for p in scan.unmatched_labels)
    if not photos and not report.unmatched:
        raise CommandError(f"{args.path} holds no images")
    return photos[: args.limit] if args.limit is not None else photos


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
    """Submit one photo, retrying while the server is busy; returns a response, an RpcError or an OSError.

    Also what `kloset bench ingest` submits with, so it measures the path `kloset ingest` takes."""
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
    delay = 0.2
    while True:
        try:
            return stub.Submit(request, timeout=120, wait_for_ready=True)
        except grpc.RpcError as exc:
            if exc.code() in _ITEM_ERRORS or message_too_large(exc):  # this photo's problem; the others may go on
                return exc
            if exc.code() not in _RETRYABLE or time.monotonic() + delay > deadline:
                raise CommandError(rpc_message(exc)) from None
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


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


def _print(report: IngestReport, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.as_json(), ensure_ascii=False))
        return
    print(
        f"submitted {report.submitted}, indexed {report.done}, duplicates {report.duplicates}, "
        f"skipped {report.skipped} (outer/one-piece only), failed {report.failed}, unmatched {len(report.unmatched)}"
    )
    if report.failures:
        print("failed by reason:")
        for reason, count in report.failed_by_reason().items():
            print(f"  {count:5d}  {reason}")
        for failure in report.failures:
            print(f"  {failure['item']}: {failure['reason']}", file=sys.stderr)
    for path in report.unmatched[:20]:
        print(f"  unmatched: {path}", file=sys.stderr)
