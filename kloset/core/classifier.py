"""Classifying the garments of images: decode, crop each region, run the attribute model.

Preparing a photo (decode, crop, color statistics) is separate from its forward pass, so callers can prepare on
other threads while the model runs, and concurrent requests share passes through a MicroBatcher.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from kloset.core import request_context
from kloset.core.errors import InvalidInput
from kloset.core.garments.crop import crop_garment
from kloset.core.garments.images import decode_image
from kloset.core.garments.regions import Box, Region, fit_region
from kloset.core.limits import InputLimits
from kloset.core.models.batcher import MicroBatcher
from kloset.core.models.predictions import GarmentPrediction

if TYPE_CHECKING:  # the models pull in TensorFlow; clients of this module's types must not pay for it
    from kloset.core.models.attributes import AttributeModel, ModelInput
    from kloset.core.models.segmenter import Segmenter

DEFAULT_MAX_GARMENTS = InputLimits.max_garments  # Settings.max_garments_per_request's default
DEFAULT_BATCH_GARMENTS = 16  # Settings.batch_garments' default
DEFAULT_BATCH_WAIT_MS = 5.0  # Settings.batch_wait_ms' default


def check_garment_count(count: int, limit: int) -> None:
    """Refuse a request that names more than `limit` garments (KLOSET_MAX_GARMENTS_PER_REQUEST)."""
    if count > limit:
        raise InvalidInput(
            f"a request may name at most {limit} garments (KLOSET_MAX_GARMENTS_PER_REQUEST); this one names {count}"
        )


@dataclass(frozen=True)
class Classification:
    garments: list[GarmentPrediction]
    model_version: str


@dataclass(frozen=True)
class PreparedPhoto:
    """A request to classify, with the in-process engine's CPU work done: model inputs and boxes per garment."""

    image: bytes
    regions: Sequence[Region]
    inputs: list["ModelInput"] = field(default_factory=list)
    boxes: list[Box | None] = field(default_factory=list)


class AttributeClassifier(Protocol):
    """Category, color and embedding per garment; served in-process or by the attribute service."""

    def classify(self, image: bytes, regions: Sequence[Region]) -> Classification:
        """Classify each region of the image (no regions: the whole image is one garment)."""

    def prepare(self, image: bytes, regions: Sequence[Region]) -> PreparedPhoto:
        """The work of classify before the forward pass; thread-safe, raises InvalidInput for a bad image."""

    def classify_prepared(self, photos: Sequence[PreparedPhoto]) -> list[Classification | Exception]:
        """Classify several prepared photos together; each gets its Classification or its own error."""


class AttributeEngine:
    """The in-process AttributeClassifier: the attribute role's work, and everyone's in `kloset serve`."""

    def __init__(
        self,
        model: "AttributeModel",
        max_pixels: int,
        segmenter: "Segmenter | None" = None,
        max_garments: int = DEFAULT_MAX_GARMENTS,
        *,
        batch_garments: int = DEFAULT_BATCH_GARMENTS,
        batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS,
    ) -> None:
        """max_garments: regions one request may name (KLOSET_MAX_GARMENTS_PER_REQUEST); batch_garments and
        batch_wait_ms: how concurrent requests share a forward pass (KLOSET_BATCH_GARMENTS, KLOSET_BATCH_WAIT_MS)."""
        if max_garments < 1:
            raise ValueError(f"max_garments must be at least 1, got {max_garments}")
        self._model = model
        self._max_pixels = max_pixels
        self._segmenter = segmenter
        self._max_garments = max_garments
        self._batcher = MicroBatcher(model.predict_inputs, batch_garments, batch_wait_ms / 1000)

    @property
    def max_garments(self) -> int:
        return self._max_garments

    @property
    def model_version(self) -> str:
        return self._model.version

    @property
    def segmenter_version(self) -> str:
        return self._segmenter.version if self._segmenter is not None else ""

    @property
    def batcher(self) -> MicroBatcher:
        return self._batcher

    def classify(self, image: bytes, regions: Sequence[Region]) -> Classification:
        [outcome] = self.classify_prepared([self.prepare(image, regions)])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def prepare(self, image: bytes, regions: Sequence[Region]) -> PreparedPhoto:
        from kloset.core.models.attributes import model_input

        # Refused before anything is decoded or cropped: the work and memory must not follow what a caller sends.
        # (The segmenter finds at most one garment per group, so its regions need no such check.)
        check_garment_count(len(regions), self._max_garments)
        # A phone photo without regions is shown upright; annotated regions refer to the stored pixels.
        pixels = decode_image(image, self._max_pixels, apply_exif_orientation=not regions)
        height, width = pixels.shape[:2]
        fitted = [fit_region(r, width, height, f"garment {i + 1}") for i, r in enumerate(regions)]
        if not fitted and self._segmenter is not None:
            request_context.check_deadline("segmentation")
            fitted = self._segmenter.regions(pixels)  # a street photo: one garment per group found
        fitted = fitted or [Region()]
        inputs = [model_input(crop_garment(pixels, r, self._model.input_size), r.group) for r in fitted]
        return PreparedPhoto(image, regions, inputs, [r.bounding_box(width, height) for r in fitted])

    def classify_prepared(self, photos: Sequence[PreparedPhoto]) -> list[Classification | Exception]:
        outcomes = self._batcher.run_many([photo.inputs for photo in photos])
        return [
            outcome
            if isinstance(outcome, BaseException)
            else Classification(
                garments=[p.with_box(box) for p, box in zip(outcome, photo.boxes, strict=True)],
                model_version=self._model.version,
            )
            for photo, outcome in zip(photos, outcomes, strict=True)
        ]
