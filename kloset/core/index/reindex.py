"""Re-indexing the catalog with the current models, without downtime.

Every photo of the catalog is indexed again from its stored blobs (the image, and the K-Fashion label when the
catalog kept it; else the garment's stored box and labels) into a new catalog built beside the live one, which
keeps answering searches; then the store switches to the new one atomically (GarmentStore.start_rebuild).
Garments already embedded by the current model are copied as they are. A garment that cannot be re-embedded (its
photo's blob is gone, its label no longer parses) is carried over unchanged and reported: nothing is dropped.
"""

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from kloset.core.classifier import AttributeClassifier
from kloset.core.errors import KlosetError
from kloset.core.garments.kfashion import KFashionLabel, LabeledGarment
from kloset.core.garments.labels import Group
from kloset.core.garments.regions import Region
from kloset.core.index.indexing import GarmentIndexer, PreparedJob
from kloset.core.index.store import CatalogGarment, CatalogRebuild, GarmentStore, StoreFilter
from kloset.core.ingest.blobs import BlobStore
from kloset.core.ingest.jobs import JobSpec
from kloset.core.limits import InputLimits

log = logging.getLogger(__name__)

_SCAN_BATCH = 512
_MAX_LISTED_FAILURES = 100  # failures the summary names one by one; all are counted


class ReindexRunning(KlosetError):
    """A reindex is already running in this process."""


class ReindexAborted(KlosetError):
    """The reindex stopped before the switch (asked to, or too many garments failed); the old catalog is live."""


@dataclass(frozen=True)
class ReindexFailure:
    item_id: str
    reason: str


@dataclass
class ReindexSummary:
    re_embedded: int = 0
    copied: int = 0  # already embedded by the current model
    failed: int = 0  # carried over unchanged
    failures: list[ReindexFailure] = field(default_factory=list)  # the first _MAX_LISTED_FAILURES
    model_version: str = ""  # the current model's
    model_versions: dict[str, int] = field(default_factory=dict)  # of the catalog after the switch
    seconds: float = 0.0

    @property
    def done(self) -> int:
        return self.re_embedded + self.copied + self.failed


Progress = Callable[[int, int], None]  # (garments done, garments in all)


class CatalogReindexer:
    """Re-embeds the catalog a store holds with the classifier's models; one reindex at a time per process."""

    def __init__(self, classifier: AttributeClassifier, store: GarmentStore, blobs: BlobStore, limits: InputLimits,
                 *, batch_photos: int = 16) -> None:  # fmt: skip
        self._classifier = classifier
        self._store = store
        self._blobs = blobs
        self._limits = limits
        self._batch_photos = batch_photos
        self._running = threading.Lock()

    def run(self, progress: Progress = lambda done, total: None, should_stop: Callable[[], bool] = lambda: False,
            max_failures: int | None = None) -> ReindexSummary:  # fmt: skip
        """Reindex the whole catalog and switch to it; raises ReindexAborted (old catalog still live) when
        should_stop() turns true before the switch or more than max_failures garments fail (default: 5% of the
        catalog, at least 10), ReindexRunning when another reindex runs here."""
        if not self._running.acquire(blocking=False):
            raise ReindexRunning("a reindex is already running in this search service; wait for it to finish")
        try:
            return self._run(progress, should_stop, max_failures)
        finally:
            self._running.release()

    def _run(self, progress: Progress, should_stop: Callable[[], bool], max_failures: int | None) -> ReindexSummary:
        started = time.monotonic()
        # The rebuild starts before the catalog is read, so every write from here on reaches it (mirrored on Edge,
        # caught up on a server) and every write before is in the scan: no garment falls between the two.
        rebuild = self._store.start_rebuild()
        try:
            photos = _by_photo(self._store.scan(_SCAN_BATCH, vectors=False))
        except BaseException:
            rebuild.abandon()
            raise
        total = sum(len(g) for g in photos)
        limit = max(10, total // 20) if max_failures is None else max_failures
        log.info("reindex of %d garments (%d photos) started", total, len(photos))
        run = _Reindex(self, rebuild, total, progress, should_stop, limit)
        try:
            run.photos(photos)
            run.catch_up(rebuild)  # writes other processes made meanwhile, while the old catalog is still live
            run.check()
            self._check_counts(rebuild)
            if not rebuild.go_live(should_stop):
                raise ReindexAborted("stopped before the switch; the old catalog is still live")
        except BaseException:
            rebuild.abandon()
            raise
        run.catch_up(rebuild)  # writes in flight at the switch (a Qdrant server)
        rebuild.retire()
        summary = run.summary
        summary.model_versions = self._store.model_versions()
        summary.seconds = time.monotonic() - started
        log.info("reindex done in %.1f s: %d re-embedded, %d copied, %d failed; catalog %s", summary.seconds,
                 summary.re_embedded, summary.copied, summary.failed, summary.model_versions)  # fmt: skip
        return summary

    def _check_counts(self, rebuild: CatalogRebuild, tries: int = 3) -> None:
        """The new catalog must hold at least every garment of the live one before the switch (writes in flight
        can make the two counts differ for a moment, so it looks again before giving up)."""
        for attempt in range(tries):
            live, new = self._store.count(), rebuild.count()
            if new >= live:
                return
            if attempt < tries - 1:
                time.sleep(0.2)
        raise ReindexAborted(f"the new catalog holds {new} garments and the live one {live}: not switching; the old "
                             "catalog is still live")  # fmt: skip

    def indexer(self, sink: "_VersionedSink") -> GarmentIndexer:
        return GarmentIndexer(self._classifier, sink, self._blobs, self._limits)

    def fetch(self, photos: Sequence[str]) -> list[CatalogGarment]:
        """The live catalog's garments of these photos, with their vectors (at most one per group each)."""
        return self._store.garments(StoreFilter(photos=tuple(photos)), limit=len(photos) * len(Group))


class _VersionedSink:
    """The rebuild as the indexer's store, noting which model version embedded what it writes."""

    def __init__(self, rebuild: CatalogRebuild) -> None:
        self._rebuild = rebuild
        self.version = ""

    def upsert(self, garments: Sequence[CatalogGarment]) -> None:
        self._rebuild.upsert(garments)
        if garments:
            self.version = garments[-1].model_version


class _Reindex:
    """One reindex's pass over the photos, and its tally."""

    def __init__(self, owner: CatalogReindexer, rebuild: CatalogRebuild, total: int, progress: Progress,
                 should_stop: Callable[[], bool], max_failures: int) -> None:  # fmt: skip
        self._owner = owner
        self._rebuild = rebuild
        self._sink = _VersionedSink(rebuild)
        self._indexer = owner.indexer(self._sink)
        self._total = total
        self._progress = progress
        self._should_stop = should_stop
        self._max_failures = max_failures
        self.summary = ReindexSummary()

    def photos(self, photos: Sequence[list[CatalogGarment]]) -> None:
        start = 0
        while start < len(photos):
            self.check()
            # Until a photo has been embedded the current model version is unknown (the attribute service may be
            # remote): photos go one by one until then, so that garments already at that version are copied.
            size = self._owner._batch_photos if self._sink.version else 1
            self._batch(photos[start : start + size])
            start += size
            self._progress(self.summary.done, self._total)

    def catch_up(self, rebuild: CatalogRebuild) -> None:
        """Garments the new catalog lacks (written by other processes meanwhile): copied or embedded again."""
        for missed in rebuild.missed(_SCAN_BATCH):
            self._total += len(missed)
            self.photos(_by_photo([missed]))

    def check(self) -> None:
        if self._should_stop():
            raise ReindexAborted("stopped; the old catalog is still live")
        if self.summary.failed > self._max_failures:
            reasons = Counter(f.reason for f in self.summary.failures).most_common(3)
            raise ReindexAborted(
                f"{self.summary.failed} garments could not be re-embedded (more than {self._max_failures}); the old "
                f"catalog is still live. Most common: " + "; ".join(f"{n} x {reason}" for reason, n in reasons)
            )

    def _batch(self, photos: Sequence[list[CatalogGarment]]) -> None:
        current = self._sink.version
        copies = [g for garments in photos for g in garments if current and g.model_version == current]
        jobs: list[tuple[list[CatalogGarment], PreparedJob]] = []
        carried: list[tuple[CatalogGarment, str]] = []
        for garments in photos:
            stale = [g for g in garments if not (current and g.model_version == current)]
            if not stale:
                continue
            if not stale[0].image_digest:
                carried.extend((g, "no stored photo (indexed before kloset kept photos)") for g in stale)
                continue
            try:
                jobs.append((stale, self._indexer.prepare(*_job(stale))))
            except KlosetError as exc:
                carried.extend((g, str(exc)) for g in stale)
        outcomes = self._indexer.index_batch([job for _, job in jobs]) if jobs else []
        for (stale, _), outcome in zip(jobs, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                carried.extend((g, str(outcome)) for g in stale)
                continue
            made = set(outcome)
            self.summary.re_embedded += sum(1 for g in stale if g.item_id in made)
            carried.extend((g, "its photo's label no longer holds it") for g in stale if g.item_id not in made)
        self._carry_over(copies, carried)
        self.summary.model_version = self._sink.version

    def _carry_over(self, copies: list[CatalogGarment], carried: list[tuple[CatalogGarment, str]]) -> None:
        """Write garments as they are: those the current model embedded, and those it could not embed again."""
        if not copies and not carried:
            return
        wanted = copies + [g for g, _ in carried]
        with_vectors = {g.item_id: g for g in wanted if g.embedding is not None}
        lacking = sorted({g.photo for g in wanted if g.item_id not in with_vectors})
        if lacking:
            with_vectors.update({g.item_id: g for g in self._owner.fetch(lacking)})
        self._rebuild.upsert([with_vectors[g.item_id] for g in wanted if g.item_id in with_vectors])
        self.summary.copied += len(copies)
        for garment, reason in carried:
            self.summary.failed += 1
            if len(self.summary.failures) < _MAX_LISTED_FAILURES:
                self.summary.failures.append(ReindexFailure(garment.item_id, reason))
            log.warning("reindex: %s carried over unchanged: %s", garment.item_id, reason)


def _by_photo(batches: Iterable[list[CatalogGarment]]) -> list[list[CatalogGarment]]:
    """Garments grouped by photo: a photo is embedded again as a whole, as it was indexed."""
    by_photo: dict[str, list[CatalogGarment]] = {}
    for batch in batches:
        for garment in batch:
            by_photo.setdefault(garment.photo, []).append(garment)
    return list(by_photo.values())


def _job(garments: Sequence[CatalogGarment]) -> tuple[JobSpec, KFashionLabel | None]:
    """The job that indexed a photo, rebuilt from its garments' payload; without a stored label, the garments'
    boxes and labels stand in for it."""
    first = garments[0]
    spec = JobSpec(
        image_digest=first.image_digest,
        label_digest=next((g.label_digest for g in garments if g.label_digest), ""),
        item_id=first.photo,
        filename=first.source,
        item_ids=tuple(g.item_id for g in garments),
    )
    if spec.label_digest:
        return spec, None
    known = tuple(LabeledGarment(Region(group=g.group, box=g.box), g.category or None, g.color or None)
                  for g in garments)  # fmt: skip
    return spec, KFashionLabel(file_name=None, width=None, height=None, garments=known, unindexed_groups=())
