"""`kloset ingest`: submit a K-Fashion folder or one image, optionally wait until every job is finished.

The submission and the wait are kloset/client/submission.py's. A run can be interrupted and re-run: content that
is already queued or indexed comes back as a duplicate and is not processed again.
"""

import json
import sys
import time

from kloset.client.stubs import Clients, CommandError
from kloset.client.submission import IngestReport, submit_all, wait_all
from kloset.core.garments.folders import CatalogPhoto, scan_catalog


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
