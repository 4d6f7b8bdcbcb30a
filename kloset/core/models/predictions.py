"""What the attribute model says about one garment; free of TensorFlow so clients can use the type."""

from dataclasses import dataclass

import numpy as np

from kloset.core.garments.labels import Group
from kloset.core.garments.regions import Box

TOP_N = 3


@dataclass(frozen=True)
class GarmentPrediction:
    """The predicted distributions (not just their argmax: search weighs them), the embedding and the color vector."""

    group: Group
    category_probabilities: dict[str, float]  # every category of the group, summing to 1
    color_probabilities: dict[str, float]  # every color, summing to 1
    embedding: np.ndarray  # unit length; compare with the dot product
    color_vector: np.ndarray  # unit length; see garments.color.color_vector
    box: Box | None = None  # where the garment is in the query photo, when known

    @property
    def category(self) -> str:
        return _argmax(self.category_probabilities)

    @property
    def color(self) -> str:
        return _argmax(self.color_probabilities)

    @property
    def top_categories(self) -> list[tuple[str, float]]:
        return top_labels(self.category_probabilities)

    @property
    def top_colors(self) -> list[tuple[str, float]]:
        return top_labels(self.color_probabilities)

    def with_box(self, box: Box | None) -> "GarmentPrediction":
        return GarmentPrediction(
            self.group, self.category_probabilities, self.color_probabilities, self.embedding, self.color_vector, box
        )


def top_labels(probabilities: dict[str, float], n: int = TOP_N) -> list[tuple[str, float]]:
    """The n most probable labels, most probable first (ties keep the vocabulary's order)."""
    return sorted(probabilities.items(), key=lambda kv: -kv[1])[:n]


def _argmax(probabilities: dict[str, float]) -> str:
    return top_labels(probabilities, 1)[0][0] if probabilities else ""
