"""`kloset ingest`: submit a K-Fashion folder or one image, optionally wait until every job is finished.

The submission and the wait are kloset/client/submission.py's. A run can be interrupted and re-run: content that
is already queued or indexed comes back as a duplicate and is not processed again.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from kloset.client.stubs import Clients, CommandError
from kloset.client.submission import IngestReport, submit_all, wait_all
from kloset.core.config import Settings
from kloset.core.garments.folders import CatalogPhoto, scan_catalog


def register(commands: argparse._SubParsersAction) -> None:
    ingest = commands.add_parser("ingest", help="submit a K-Fashion folder (images/ + labels/) or one image")
    ingest.add_argument("path", type=Path)
    ingest.add_argument("--label", type=Path, help="K-Fashion label JSON for a single image")
    ingest.add_argument("--item-id", help="catalog id for a single image (default: its file stem)")
    ingest.add_argument("--limit", type=int, help="submit only the first N images of a folder")
    ingest.add_argument("--wait", action="store_true", help="block until every job is done or failed")
    ingest.add_argument("--timeout", type=float, default=24 * 3600.0, help="give up after this many seconds")
    ingest.add_argument("--allow-unlabeled", action="store_true", help="also submit photos that have no label")
    ingest.add_argument("--force", action="store_true",
                        help="queue every photo again, even those indexed before (duplicates are otherwise skipped "
                        "while their garments are in the catalog)")  # fmt: skip
    ingest.add_argument("--quiet", action="store_true", help="no progress on stderr")
    ingest.add_argument("--json", action="store_true")
    ingest.set_defaults(run=run_ingest)


def run_ingest(args, settings: Settings) -> int:
    if not args.path.exists():
        raise CommandError(f"{args.path} does not exist")
    if args.label and not args.path.is_file():
        raise CommandError("--label goes with a single image, not a folder")
    report = IngestReport()
    photos = _photos(args, report)
    stub = Clients(settings).ingest()
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
