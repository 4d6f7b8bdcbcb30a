"""`kloset ingest`: submit a K-Fashion folder or one image, optionally wait until every job is finished."""

import json
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from kloset.cli.client import Clients, CommandError, rpc_message
from kloset.v1 import ingest_pb2

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
_SUBMITTERS = 4
_POLL_S = 0.5


@dataclass(frozen=True)
class CatalogFile:
    image: Path
    label: Path | None
    item_id: str = ""


@dataclass
class IngestReport:
    submitted: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    jobs: dict[str, str] = field(default_factory=dict)  # job id -> file name, for jobs still running

    def fail(self, item: str, reason: str) -> None:
        self.failed += 1
        self.failures.append({"item": item, "reason": reason})

    def as_json(self) -> dict:
        return {
            "submitted": self.submitted,
            "done": self.done,
            "failed": self.failed,
            "skipped": self.skipped,
            "failures": self.failures,
        }


def catalog_files(path: Path, label: Path | None, item_id: str, limit: int | None) -> Iterator[CatalogFile]:
    """The photos to submit: a K-Fashion folder (images/ + labels/) or one image file."""
    if path.is_file():
        yield CatalogFile(path, label, item_id)
        return
    images_dir = path / "images"
    if not images_dir.is_dir():
        raise CommandError(f"{path} is neither an image nor a K-Fashion folder with images/ and labels/")
    images = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    for image in images[:limit] if limit is not None else images:
        candidate = path / "labels" / f"{image.stem}.json"
        yield CatalogFile(image, candidate if candidate.is_file() else None)


def run_ingest(clients: Clients, args) -> int:
    if args.label and not args.path.is_file():
        raise CommandError("--label goes with a single image, not a folder")
    if not args.path.exists():
        raise CommandError(f"{args.path} does not exist")
    stub = clients.ingest()
    report = IngestReport()
    files = list(catalog_files(args.path, args.label, args.item_id or "", args.limit))
    with ThreadPoolExecutor(_SUBMITTERS) as pool:
        for file, outcome in zip(files, pool.map(lambda f: _submit(stub, f), files), strict=True):
            _record(report, file, outcome)
    if args.wait:
        _wait(stub, report, args.timeout)
    _print(report, args.json)
    return 1 if report.failed else 0


def _submit(stub, file: CatalogFile):
    try:
        request = ingest_pb2.SubmitRequest(
            image=file.image.read_bytes(),
            label_json=file.label.read_bytes() if file.label else b"",
            item_id=file.item_id,
            filename=file.image.name,
        )
    except OSError as exc:
        return exc
    try:
        return stub.Submit(request, timeout=120, wait_for_ready=True)
    except grpc.RpcError as exc:
        if exc.code() not in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND):
            raise CommandError(rpc_message(exc)) from None
        return exc


def _record(report: IngestReport, file: CatalogFile, outcome) -> None:
    if isinstance(outcome, grpc.RpcError):
        report.fail(file.image.name, outcome.details())
    elif isinstance(outcome, OSError):
        report.fail(file.image.name, f"cannot read: {outcome}")
    elif outcome.job.state == ingest_pb2.JOB_STATE_SKIPPED:
        report.skipped += 1
    else:
        report.submitted += 1
        report.jobs[outcome.job.job_id] = file.image.name


def _wait(stub, report: IngestReport, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while report.jobs:
        for job_id, name in list(report.jobs.items()):
            try:
                job = stub.GetJob(ingest_pb2.GetJobRequest(job_id=job_id), timeout=30).job
            except grpc.RpcError as exc:
                raise CommandError(rpc_message(exc)) from None
            if job.state == ingest_pb2.JOB_STATE_DONE:
                report.done += 1
            elif job.state == ingest_pb2.JOB_STATE_FAILED:
                report.fail(name, job.error)
            else:
                continue
            del report.jobs[job_id]
        if report.jobs:
            if time.monotonic() > deadline:
                raise CommandError(f"{len(report.jobs)} jobs still unfinished after {timeout_s:.0f} s")
            time.sleep(_POLL_S)


def _print(report: IngestReport, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.as_json(), ensure_ascii=False))
        return
    print(f"submitted {report.submitted}, done {report.done}, failed {report.failed}, skipped {report.skipped}")
    for failure in report.failures:
        print(f"  {failure['item']}: {failure['reason']}", file=sys.stderr)
