"""What the attribute model says about one garment; free of TensorFlow so clients can use the type."""

from dataclasses import dataclass

import numpy as np

from kloset.core.garments.labels import Group


@dataclass(frozen=True)
class GarmentPrediction:
    group: Group
    category: str
    color: str
    top_categories: list[tuple[str, float]]
    top_colors: list[tuple[str, float]]
    embedding: np.ndarray  # unit length; compare with the dot product
