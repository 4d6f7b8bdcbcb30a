"""Classifying the garments of one image: decode, crop each region, run the attribute model."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from kloset.core.errors import InvalidInput
from kloset.core.garments.crop import crop_garment
from kloset.core.garments.images import decode_image
from kloset.core.garments.regions import Region, fit_region
from kloset.core.models.predictions import GarmentPrediction

if TYPE_CHECKING:  # the models pull in TensorFlow; clients of this module's types must not pay for it
    from kloset.core.models.attributes import AttributeModel
    from kloset.core.models.segmenter import Segmenter

DEFAULT_MAX_GARMENTS = 16  # Settings.max_garments_per_request's default


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


class AttributeClassifier(Protocol):
    """Category, color and embedding per garment; served in-process or by the attribute service."""

    def classify(self, image: bytes, regions: Sequence[Region]) -> Classification:
        """Classify each region of the image (no regions: the whole image is one garment)."""


class AttributeEngine:
    """The in-process AttributeClassifier: the attribute role's work, and everyone's in `kloset serve`."""

    def __init__(
        self,
        model: "AttributeModel",
        max_pixels: int,
        segmenter: "Segmenter | None" = None,
        max_garments: int = DEFAULT_MAX_GARMENTS,
    ) -> None:
        """max_garments: regions one request may name (KLOSET_MAX_GARMENTS_PER_REQUEST)."""
        if max_garments < 1:
            raise ValueError(f"max_garments must be at least 1, got {max_garments}")
        self._model = model
        self._max_pixels = max_pixels
        self._segmenter = segmenter
        self._max_garments = max_garments

    @property
    def max_garments(self) -> int:
        return self._max_garments

    @property
    def model_version(self) -> str:
        return self._model.version

    @property
    def segmenter_version(self) -> str:
        return self._segmenter.version if self._segmenter is not None else ""

    def classify(self, image: bytes, regions: Sequence[Region]) -> Classification:
        # Refused before anything is decoded or cropped: the work and memory must not follow what a caller sends.
        # (The segmenter finds at most one garment per group, so its regions need no such check.)
        check_garment_count(len(regions), self._max_garments)
        # A phone photo without regions is shown upright; annotated regions refer to the stored pixels.
        pixels = decode_image(image, self._max_pixels, apply_exif_orientation=not regions)
        height, width = pixels.shape[:2]
        fitted = [fit_region(r, width, height, f"garment {i + 1}") for i, r in enumerate(regions)]
        if not fitted and self._segmenter is not None:
            fitted = self._segmenter.regions(pixels)  # a street photo: one garment per group found
        fitted = fitted or [Region()]
        crops = [crop_garment(pixels, region, self._model.input_size) for region in fitted]
        predictions = self._model.predict(crops, [region.group for region in fitted])
        boxed = [p.with_box(r.bounding_box(width, height)) for p, r in zip(predictions, fitted, strict=True)]
        return Classification(garments=boxed, model_version=self._model.version)
