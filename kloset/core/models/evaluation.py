"""Measuring the shipped models on any folder in the K-Fashion layout."""

from pathlib import Path

import numpy as np

from kloset.core.garments.crop import crop_garment
from kloset.core.garments.labels import CATEGORIES, COLORS
from kloset.core.models.attributes import AttributeModel
from kloset.core.models.metrics import confusion
from kloset.core.models.training import LabeledCrop, is_validation, iter_labeled_garments, summarize

_BATCH = 32


def evaluate_attributes(model: AttributeModel, data_dir: Path, split: str = "all") -> tuple[dict, dict]:
    """Run the model on every labelled 상의/하의 garment (split="validation": only the model's held-out photos).

    Returns the figures and the confusion matrices {"category": ..., "color": ...}.
    """
    percent = int(model.info.training.get("validation_percent", 15))
    items: list[LabeledCrop] = []
    crops, groups, category_pred, color_pred = [], [], [], []

    def flush() -> None:
        for prediction in model.predict(crops, groups):
            category_pred.append(CATEGORIES.index(prediction.category))
            color_pred.append(COLORS.index(prediction.color))
        crops.clear()
        groups.clear()

    for image_id, image, garments in iter_labeled_garments(data_dir):
        if split == "validation" and not is_validation(image_id, percent):
            continue
        for g in garments:
            items.append(LabeledCrop(image_id, g.group.value, CATEGORIES.index(g.category), COLORS.index(g.color)))
            crops.append(crop_garment(image, g.region, model.input_size))
            groups.append(g.group)
        if len(crops) >= _BATCH:
            flush()
    flush()
    figures = summarize(items, np.array(category_pred), np.array(color_pred))
    figures = {"model_version": model.version, "split": split, **figures}
    matrices = {
        "category": confusion([i.category for i in items], category_pred, len(CATEGORIES)),
        "color": confusion([i.color for i in items], color_pred, len(COLORS)),
    }
    return figures, matrices
