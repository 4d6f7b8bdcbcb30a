"""Indexing queued photos: crop their garments, classify and embed them, upsert them into the store.

A batch of jobs is prepared one job at a time (on any thread), then classified together and written with one
upsert, so many photos share a forward pass and a store round trip.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from kloset.core.classifier import AttributeClassifier, Classification, PreparedPhoto
from kloset.core.garments.images import image_size
from kloset.core.garments.kfashion import KFashionLabel
from kloset.core.garments.regions import Region
from kloset.core.index.store import CatalogGarment, GarmentSink
from kloset.core.ingest.blobs import BlobStore
from kloset.core.ingest.catalog import garment_item_id, read_label
from kloset.core.ingest.jobs import JobSpec
from kloset.core.limits import InputLimits


@dataclass(frozen=True)
class PreparedJob:
    """One job's photo read, its label parsed and its garments cut out: ready for the forward pass."""

    spec: JobSpec
    label: KFashionLabel | None
    photo: PreparedPhoto


class GarmentIndexer:
    """The work of a queue worker, independent of how jobs arrive."""

    def __init__(
        self,
        classifier: AttributeClassifier,
        store: GarmentSink,
        blobs: BlobStore,
        limits: InputLimits,
    ) -> None:
        """limits: what a queued photo and its label may hold (checked again here: a job may predate the limits)."""
        self._classifier = classifier
        self._store = store
        self._blobs = blobs
        self._limits = limits

    def index(self, spec: JobSpec) -> list[str]:
        """Index one photo's garments and return their item ids; the store holds them when this returns."""
        [outcome] = self.index_batch([self.prepare(spec)])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def prepare(self, spec: JobSpec, known: KFashionLabel | None = None) -> PreparedJob:
        """Read the blobs, parse the label and cut the garments out; raises InvalidInput or NotFound for bad input.

        known: the garments' regions and labels when the catalog kept no label blob (a reindex of an older catalog).
        """
        image = self._blobs.get(spec.image_digest)
        width, height = image_size(image, self._limits.max_pixels)
        label = known
        if spec.label_digest:
            label = read_label(self._blobs.get(spec.label_digest), self._limits, width, height)
        regions = [g.region for g in label.garments] if label else [Region()]
        return PreparedJob(spec, label, self._classifier.prepare(image, regions))

    def index_batch(self, jobs: Sequence[PreparedJob]) -> list[list[str] | Exception]:
        """Classify the jobs together and store all their garments with one upsert; per job its item ids or error.

        A job whose classification failed is left out of the upsert; if the upsert raises, nothing is stored and
        the error propagates (every job of the batch is to be retried).
        """
        outcomes: list[list[str] | Exception] = []
        garments: list[CatalogGarment] = []
        for job, classification in zip(jobs, self._classifier.classify_prepared([j.photo for j in jobs]), strict=True):
            if isinstance(classification, BaseException):
                outcomes.append(classification)
                continue
            catalogued = _catalog_garments(job, classification)
            garments.extend(catalogued)
            outcomes.append([g.item_id for g in catalogued])
        if garments:
            self._store.upsert(garments)
        return outcomes


def _catalog_garments(job: PreparedJob, classification: Classification) -> list[CatalogGarment]:
    """Labelled category and color come from the catalog's own annotation; the model fills in what is missing."""
    spec, label = job.spec, job.label
    garments = []
    for i, prediction in enumerate(classification.garments):
        labelled = label.garments[i] if label else None
        garments.append(
            CatalogGarment(
                item_id=garment_item_id(spec.item_id, prediction.group.value),
                group=prediction.group,
                category=(labelled.category if labelled else None) or prediction.category,
                color=(labelled.color if labelled else None) or prediction.color,
                source=spec.filename,
                model_version=classification.model_version,
                embedding=prediction.embedding,
                color_vector=prediction.color_vector,
                photo_id=spec.item_id,
                image_digest=spec.image_digest,
                box=prediction.box,
                label_digest=spec.label_digest,
            )
        )
    return garments
