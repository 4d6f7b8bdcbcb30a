"""Indexing one queued photo: crop its garments, classify and embed them, upsert them into the store."""

from kloset.core.classifier import AttributeClassifier
from kloset.core.garments.images import image_size
from kloset.core.garments.regions import Region
from kloset.core.index.store import CatalogGarment, GarmentStore
from kloset.core.ingest.blobs import BlobStore
from kloset.core.ingest.catalog import garment_item_id, read_label
from kloset.core.ingest.queue import JobSpec


class GarmentIndexer:
    """The work of a queue worker, independent of how jobs arrive."""

    def __init__(
        self,
        classifier: AttributeClassifier,
        store: GarmentStore,
        blobs: BlobStore,
        *,
        max_pixels: int,
        max_label_bytes: int,
    ) -> None:
        self._classifier = classifier
        self._store = store
        self._blobs = blobs
        self._max_pixels = max_pixels
        self._max_label_bytes = max_label_bytes

    def index(self, spec: JobSpec) -> list[str]:
        """Index the photo's garments and return their item ids; the store holds them when this returns.

        Labelled category and color come from the catalog's own annotation; the model fills in what is missing.
        """
        image = self._blobs.get(spec.image_digest)
        width, height = image_size(image, self._max_pixels)  # classify decodes the pixels, once
        label = (
            read_label(self._blobs.get(spec.label_digest), self._max_label_bytes, width, height)
            if spec.label_digest
            else None
        )
        regions = [g.region for g in label.garments] if label else [Region()]
        classification = self._classifier.classify(image, regions)
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
                )
            )
        self._store.upsert(garments)
        return [g.item_id for g in garments]
