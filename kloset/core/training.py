"""Training the attribute heads on a K-Fashion folder over cached, frozen VGG16 features.

The backbone is frozen, so its pooled features are computed once per garment and cached; training the heads
then takes seconds on a CPU. The split is by image id (a hash), so no photo is in both train and validation.
"""

import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from kloset.core.backbone import build_backbone, hed_weights_path, preprocess
from kloset.core.color import color_features
from kloset.core.crop import crop_garment
from kloset.core.errors import InvalidInput
from kloset.core.images import decode_image
from kloset.core.kfashion import parse_label
from kloset.core.labels import CATEGORIES, CATEGORY_GROUP, COLORS
from kloset.core.model import ModelInfo, build_heads, save_heads

log = logging.getLogger(__name__)
_BATCH = 32


@dataclass(frozen=True)
class LabeledCrop:
    image_id: str
    group: str
    category: int
    color: int


@dataclass(frozen=True)
class FeatureSet:
    items: list[LabeledCrop]
    features: np.ndarray  # (N, 512) pooled backbone features
    color_stats: np.ndarray  # (N, COLOR_FEATURES_DIM)


def iter_labeled_garments(data_dir: Path, max_pixels: int = 40_000_000) -> Iterator[tuple[str, np.ndarray, list]]:
    """(image id, pixels, labelled 상의/하의 garments) for each photo of a K-Fashion folder that has any."""
    labels = sorted((data_dir / "labels").glob("*.json"))
    if not labels:
        raise InvalidInput(f"{data_dir} has no labels/*.json: expected a K-Fashion folder (images/ + labels/)")
    for label_path in labels:
        label = parse_label(label_path.read_bytes())
        garments = [g for g in label.garments if g.category and g.color]
        image_path = data_dir / "images" / (label.file_name or f"{label_path.stem}.jpg")
        if not garments or not image_path.is_file():
            continue
        yield label_path.stem, decode_image(image_path.read_bytes(), max_pixels), garments


def is_validation(image_id: str, percent: int) -> bool:
    """Deterministic split by image id, stable across machines and runs."""
    return int(hashlib.sha1(image_id.encode()).hexdigest(), 16) % 100 < percent


def extract_features(data_dir: Path, input_size: int, backbone_weights: Path | None, cache: Path | None) -> FeatureSet:
    """Crop every labelled garment and compute its features, reusing a cache file when it matches."""
    if cache is not None and cache.is_file():
        log.info("using cached features %s", cache)
        return _load_cache(cache)
    backbone = build_backbone(input_size, hed_weights_path(backbone_weights))
    items, pixels, stats, features = [], [], [], []
    started = time.monotonic()
    for image_id, image, garments in iter_labeled_garments(data_dir):
        for g in garments:
            crop = crop_garment(image, g.region, input_size)
            items.append(LabeledCrop(image_id, g.group.value, CATEGORIES.index(g.category), COLORS.index(g.color)))
            pixels.append(crop.pixels)
            stats.append(color_features(crop.garment_pixels))
        if len(pixels) >= _BATCH:
            features.append(np.asarray(backbone(preprocess(np.stack(pixels)), training=False)))
            pixels = []
    if pixels:
        features.append(np.asarray(backbone(preprocess(np.stack(pixels)), training=False)))
    if not items:
        raise InvalidInput(f"{data_dir} has no 상의/하의 garment with both a category and a color")
    log.info("features of %d garments in %.0f s", len(items), time.monotonic() - started)
    result = FeatureSet(items, np.concatenate(features), np.stack(stats))
    if cache is not None:
        _save_cache(cache, result)
    return result


def train_heads(
    data: FeatureSet,
    *,
    input_size: int,
    out_dir: Path,
    epochs: int = 60,
    validation_percent: int = 15,
    seed: int = 0,
    source: str = "",
) -> ModelInfo:
    """Fit the category and color heads with class-balanced sample weights; save them with their metrics."""
    keras.utils.set_random_seed(seed)
    val = np.array([is_validation(item.image_id, validation_percent) for item in data.items])
    if val.all() or not val.any():
        val = np.zeros(len(data.items), dtype=bool)  # too few photos to hold any out: train on all
    train = ~val
    y_cat = np.array([i.category for i in data.items])
    y_col = np.array([i.color for i in data.items])
    heads = build_heads()
    heads.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss={"category": "sparse_categorical_crossentropy", "color": "sparse_categorical_crossentropy"},
    )
    heads.fit(
        {"features": data.features[train], "color_stats": data.color_stats[train]},
        {"category": y_cat[train], "color": y_col[train]},
        sample_weight={"category": _balanced(y_cat[train]), "color": _balanced(y_col[train])},
        epochs=epochs,
        batch_size=64,
        verbose=0,
    )
    metrics = evaluate_heads(heads, data, val) if val.any() else {}
    training = {
        "data": source,
        "trained_at": time.strftime("%Y-%m-%d"),
        "garments_train": int(train.sum()),
        "garments_validation": int(val.sum()),
        "validation_percent": validation_percent,
        "epochs": epochs,
        "seed": seed,
        "validation": metrics,
    }
    return save_heads(out_dir, heads, input_size, training)


def evaluate_heads(heads: keras.Model, data: FeatureSet, mask: np.ndarray) -> dict[str, float]:
    """Accuracy of each head on the masked garments, the category restricted to the garment's known group."""
    out = heads.predict({"features": data.features[mask], "color_stats": data.color_stats[mask]}, verbose=0)
    items = [item for item, keep in zip(data.items, mask, strict=True) if keep]
    in_group = np.array([[CATEGORY_GROUP[c].value == item.group for c in CATEGORIES] for item in items])
    category_pred = np.argmax(np.where(in_group, out["category"], -1.0), axis=1)
    color_pred = np.argmax(out["color"], axis=1)
    return {
        "n": len(items),
        "category_accuracy": round(float(np.mean(category_pred == [i.category for i in items])), 4),
        "color_accuracy": round(float(np.mean(color_pred == [i.color for i in items])), 4),
    }


def _balanced(labels: np.ndarray) -> np.ndarray:
    """Inverse-frequency weights (square-rooted, so rare classes help without dominating)."""
    counts = np.bincount(labels)
    weights = 1.0 / np.sqrt(counts[labels])
    return (weights / weights.mean()).astype(np.float32)


def _save_cache(path: Path, data: FeatureSet) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        image_id=np.array([i.image_id for i in data.items]),
        group=np.array([i.group for i in data.items]),
        category=np.array([i.category for i in data.items]),
        color=np.array([i.color for i in data.items]),
        features=data.features,
        color_stats=data.color_stats,
    )


def _load_cache(path: Path) -> FeatureSet:
    with np.load(path) as z:
        items = [
            LabeledCrop(str(a), str(g), int(c), int(o))
            for a, g, c, o in zip(z["image_id"], z["group"], z["category"], z["color"], strict=True)
        ]
        return FeatureSet(items, z["features"], z["color_stats"])
