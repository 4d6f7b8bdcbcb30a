"""Accepting catalog photos: validate everything a caller can get wrong, store the bytes, queue the job."""

import hashlib
import re
from dataclasses import dataclass
from pathlib import PurePath
from typing import Protocol

from kloset.core.errors import InvalidInput, quoted
from kloset.core.garments.images import decode_image
from kloset.core.garments.kfashion import KFashionLabel, parse_label
from kloset.core.garments.regions import fit_region
from kloset.core.ingest.blobs import BlobStore
from kloset.core.ingest.jobs import Job, JobSpec
from kloset.core.ingest.queue import IngestQueue
from kloset.core.limits import InputLimits

_ITEM_ID = re.compile(r"^[\w.\-:@+]+(?:/[\w.\-:@+]+)*$")
MAX_ITEM_ID_LENGTH = 200
MAX_FILENAME_LENGTH = 1000  # the file name is stored with the job and shown with its dead letter


@dataclass(frozen=True)
class Submission:
    image: bytes
    label_json: bytes = b""
    item_id: str = ""
    filename: str = ""
    force: bool = False  # queue it even if the same content was indexed before


def garment_item_id(item_id: str, group: str) -> str:
    """The id of one garment of a catalog photo, e.g. 0001/top."""
    return f"{item_id}/{group}"


def check_item_id(item_id: str) -> str:
    """Return item_id if it is usable as a catalog id, else raise InvalidInput saying what is allowed."""
    if not item_id or len(item_id) > MAX_ITEM_ID_LENGTH or not _ITEM_ID.match(item_id):
        raise InvalidInput(
            f"item id {quoted(item_id)} is not valid: use 1-{MAX_ITEM_ID_LENGTH} letters, digits and . - _ : @ + "
            "in parts separated by /"
        )
    return item_id


def check_filename(filename: str) -> str:
    """Return filename if it can be stored with a job, else raise InvalidInput."""
    if len(filename) > MAX_FILENAME_LENGTH:
        raise InvalidInput(f"file name {quoted(filename)} is longer than {MAX_FILENAME_LENGTH} characters")
    return filename


def read_label(label_json: bytes, limits: InputLimits, width: int, height: int) -> KFashionLabel:
    """Parse a K-Fashion label within the limits and check it belongs to a width x height image."""
    limits.check_label_size(len(label_json))
    label = parse_label(label_json, limits)
    if (label.width and label.width != width) or (label.height and label.height != height):
        raise InvalidInput(
            f"label is for a {label.width}x{label.height} image ({quoted(label.file_name)}), "
            f"but the image is {width}x{height}: is it the label of another image?"
        )
    for garment in label.garments:
        fit_region(garment.region, width, height, f"{garment.group.value} garment")
    return label


class IndexedGarments(Protocol):
    """What submission asks of the catalog: is a garment still there (the GarmentStore answers)."""

    def retrieve(self, item_id: str) -> object | None: ...


class CatalogIngest:
    """Submit catalog photos: nothing is queued unless the photo and its label are usable."""

    def __init__(
        self, queue: IngestQueue, blobs: BlobStore, limits: InputLimits, catalog: IndexedGarments | None = None
    ) -> None:
        """Validation limits come from Settings; the backlog limit lives in the queue. catalog, when this process
        can read it: a photo indexed before counts as a duplicate only while its garments are still there."""
        self._queue = queue
        self._blobs = blobs
        self._limits = limits
        self._catalog = catalog

    def submit(self, submission: Submission) -> tuple[Job, bool]:
        """Validate and queue one photo; returns (job, duplicate). Exactly the same bytes are not queued twice."""
        pixels = decode_image(submission.image, self._limits.max_pixels)
        height, width = pixels.shape[:2]
        label = read_label(submission.label_json, self._limits, width, height) if submission.label_json else None
        item_id = check_item_id(
            submission.item_id
            or (PurePath(submission.filename).stem if submission.filename else "")
            or (label.stem if label and label.stem else "")
            or hashlib.sha256(submission.image).hexdigest()[:16]
        )
        filename = check_filename(submission.filename or (label.file_name if label and label.file_name else ""))
        if label is not None and not label.garments:
            groups = ", ".join(label.unindexed_groups) or "no garment"
            reason = f"nothing to index: the label has only {groups} (no 상의/하의)"
            return self._queue.record_skipped([], reason), False
        image_digest = self._blobs.put(submission.image)
        label_digest = self._blobs.put(submission.label_json) if label is not None else ""
        spec = JobSpec(
            image_digest=image_digest,
            label_digest=label_digest,
            item_id=item_id,
            filename=filename,
            item_ids=tuple(garment_item_id(item_id, g.group.value) for g in label.garments) if label else (),
        )
        # The item id is part of the key: the same photo under another id is another catalog entry.
        key = f"{item_id}:{image_digest}:{label_digest}"
        return self._queue.enqueue(spec, content_key=key, still_indexed=self._still_indexed, force=submission.force)

    def _still_indexed(self, job: Job) -> bool:
        """Whether every garment an earlier done job indexed is still in the catalog (unknown: assume so)."""
        if self._catalog is None:
            return True
        return all(self._catalog.retrieve(item_id) is not None for item_id in job.item_ids)
