"""Training the attribute heads on a K-Fashion folder over cached, frozen backbone features.

The backbone is frozen, so its pooled features are computed once per garment and cached; training the heads
then takes seconds on a CPU. The split is by image id (a hash), so no photo is in both train and validation.
"""

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import keras
import numpy as np
from scipy import ndimage

from kloset.core.errors import InvalidInput
from kloset.core.garments.color import COLOR_FEATURES_DIM, color_features
from kloset.core.garments.crop import GarmentCrop, crop_garment, garment_mask
from kloset.core.garments.images import decode_image
from kloset.core.garments.kfashion import KFashionLabel, parse_label
from kloset.core.garments.labels import CATEGORIES, CATEGORY_GROUP, COLORS, KOREAN_GROUPS, parse_category
from kloset.core.garments.regions import Region
from kloset.core.limits import InputLimits
from kloset.core.models.attributes import ModelInfo, build_heads, save_heads
from kloset.core.models.backbone import FEATURE_DIM, FEATURE_LAYOUT, build_backbone, default_weights_path, preprocess
from kloset.core.models.metrics import report

log = logging.getLogger(__name__)
_BATCH = 32


NO_COLOR = -1  # tag-only photos say what is worn, not its color


@dataclass(frozen=True)
class LabeledCrop:
    image_id: str
    group: str
    category: int
    color: int
    flipped: bool = False  # an augmented copy: trained on, never validated on
    extra: bool = False  # from tag-only photos or street crops of training photos: trained on, never validated on
    kind: str = "polygon"  # how the garment was cut out: polygon, segmenter, jitter (see street_crops), tag


@dataclass(frozen=True)
class FeatureSet:
    items: list[LabeledCrop]
    features: np.ndarray  # (N, FEATURE_DIM) pooled backbone features
    color_stats: np.ndarray  # (N, COLOR_FEATURES_DIM)


def iter_labels(data_dir: Path) -> Iterator[tuple[str, KFashionLabel, Path]]:
    """(label file stem, parsed label, image path) for each label of a K-Fashion folder whose image exists."""
    labels = sorted((data_dir / "labels").glob("*.json"))
    if not labels:
        raise InvalidInput(f"{data_dir} has no labels/*.json: expected a K-Fashion folder (images/ + labels/)")
    for label_path in labels:
        label = parse_label(label_path.read_bytes())
        image_path = data_dir / "images" / (label.file_name or f"{label_path.stem}.jpg")
        if image_path.is_file():
            yield label_path.stem, label, image_path


def iter_labeled_garments(
    data_dir: Path, max_pixels: int = InputLimits.max_pixels
) -> Iterator[tuple[str, np.ndarray, list]]:
    """(image id, pixels, labelled 상의/하의 garments) for each photo of a K-Fashion folder that has any."""
    for image_id, label, image_path in iter_labels(data_dir):
        garments = [g for g in label.garments if g.category and g.color]
        if garments:
            yield image_id, decode_image(image_path.read_bytes(), max_pixels), garments


def is_validation(image_id: str, percent: int) -> bool:
    """Deterministic split by image id, stable across machines and runs."""
    return int(hashlib.sha1(image_id.encode()).hexdigest(), 16) % 100 < percent


def extract_features(data_dir: Path, input_size: int, backbone_weights: Path | None, cache: Path | None) -> FeatureSet:
    """Features of every labelled garment (and its mirror image), reusing a matching cache file."""

    def compute() -> FeatureSet:
        backbone = build_backbone(input_size, default_weights_path(backbone_weights))
        started = time.monotonic()
        result = featurize(
            backbone,
            (
                (crop_garment(image, g.region, input_size),
                 LabeledCrop(image_id, g.group.value, CATEGORIES.index(g.category), COLORS.index(g.color)))
                for image_id, image, garments in iter_labeled_garments(data_dir)
                for g in garments
            ),
        )  # fmt: skip
        if not result.items:
            raise InvalidInput(f"{data_dir} has no 상의/하의 garment with both a category and a color")
        log.info("features of %d garment views in %.0f s", len(result.items), time.monotonic() - started)
        return result

    return _cached(cache, compute)


def _cached(cache: Path | None, compute: Callable[[], FeatureSet]) -> FeatureSet:
    if cache is not None and cache.is_file():
        cached = _load_cache(cache)
        if cached is not None:
            log.info("using cached features %s", cache)
            return cached
        log.info("%s holds another backbone's features: computing them again", cache)
    result = compute()
    if cache is not None:
        _save_cache(cache, result)
    return result


def featurize(backbone: keras.Model, labelled_crops: Iterable[tuple[GarmentCrop, LabeledCrop]]) -> FeatureSet:
    """Backbone features and color statistics of each crop and its mirror image (which follows it), in batches.

    Mirroring is the one augmentation that changes neither category nor color; hue or brightness shifts would.
    """
    items, views, stats, features = [], [], [], []

    def flush() -> None:
        if views:
            features.append(np.asarray(backbone(preprocess(np.stack(views)), training=False)["features"]))
            views.clear()

    for crop, item in labelled_crops:
        color = color_features(crop.garment_pixels)
        for flipped, view in ((False, crop.pixels), (True, crop.pixels[:, ::-1])):
            items.append(replace(item, flipped=flipped))
            views.append(view)
            stats.append(color)
        if len(views) >= _BATCH:
            flush()
    flush()
    if not items:
        return FeatureSet([], np.zeros((0, FEATURE_DIM), np.float32), np.zeros((0, COLOR_FEATURES_DIM), np.float32))
    return FeatureSet(items, np.concatenate(features), np.stack(stats))


def merge(*sets: FeatureSet) -> FeatureSet:
    """One feature set from several (the labelled folder and the tag-only photos)."""
    return FeatureSet(
        [item for s in sets for item in s.items],
        np.concatenate([s.features for s in sets]),
        np.concatenate([s.color_stats for s in sets]),
    )


def extract_query_features(
    queries_dir: Path, input_size: int, segmenter, backbone_weights: Path | None, cache: Path | None
) -> FeatureSet:
    """Extra category examples from tag-only photos: the segmenter finds each tagged top/bottom, the tag names it.

    Photos whose tags name two candidates for a group are left out for that group: the tag cannot say which
    one is visible.
    """
    tags_path = queries_dir / "tags.json"
    try:
        tags = json.loads(tags_path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:  # RecursionError: arrays or objects nested thousands deep
        raise InvalidInput(f"{tags_path} is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(tags, dict) or not all(isinstance(entry, dict) for entry in tags.values()):
        raise InvalidInput(f"{tags_path} must map each image id to an object of tags")

    def tagged_crops() -> Iterator[tuple[GarmentCrop, LabeledCrop]]:
        for image_id, entry in sorted(tags.items()):
            wanted = {
                group: parse_category(entry[korean])
                for korean, group in KOREAN_GROUPS.items()
                if entry.get(korean) and len(entry.get(f"{korean}_candidates", [entry[korean]])) == 1
            }
            path = queries_dir / "images" / f"{image_id}.jpg"
            if not wanted or not path.is_file():
                continue
            image = decode_image(path.read_bytes(), 40_000_000)
            for group, mask in segmenter.segment(image).items():
                if group in wanted:
                    item = LabeledCrop(f"q{image_id}", group.value, CATEGORIES.index(wanted[group]), NO_COLOR,
                                       extra=True, kind="tag")  # fmt: skip
                    yield crop_garment(image, Region(group=group, mask=mask), input_size), item

    def compute() -> FeatureSet:
        result = featurize(build_backbone(input_size, default_weights_path(backbone_weights)), tagged_crops())
        log.info("%d extra garment views from %s", len(result.items), queries_dir)
        return result

    return _cached(cache, compute)


JITTERS_PER_GARMENT = 2


def street_crops(
    pixels: np.ndarray, garments: list, found: dict, rng: np.random.Generator, input_size: int
) -> Iterator[tuple[GarmentCrop, str, object]]:
    """The crops a street query makes of a garment: the segmenter's (when it found the group), and masks that err
    the way the segmenter does (grown or shrunk, shifted, merged with the segmenter's), so the heads learn what
    query crops look like, not only clean polygons. Yields (crop, kind, garment)."""
    height, width = pixels.shape[:2]
    scale = width / 550  # the jitter was sized on CCP photos, 550 px wide
    for garment in garments:
        truth = garment_mask(height, width, garment.region)
        segmented = found.get(garment.group)
        if segmented is not None:
            yield crop_garment(pixels, Region(group=garment.group, mask=segmented), input_size), "segmenter", garment
        for _ in range(JITTERS_PER_GARMENT):
            mask = _jittered(truth, segmented, rng, scale)
            if mask.sum() >= 50:
                yield crop_garment(pixels, Region(group=garment.group, mask=mask), input_size), "jitter", garment


def _jittered(truth: np.ndarray, segmented: np.ndarray | None, rng: np.random.Generator, scale: float) -> np.ndarray:
    radius = round(int(rng.integers(-10, 14)) * scale)
    mask = truth
    if radius > 0:
        mask = ndimage.binary_dilation(mask, iterations=radius)
    elif radius < 0:
        mask = ndimage.binary_erosion(mask, iterations=-radius)
    shift = (rng.uniform(-0.06, 0.06, 2) * np.array(mask.shape)).astype(int)
    mask = np.roll(mask, tuple(shift), axis=(0, 1))
    if segmented is not None and rng.random() < 0.3:
        mask = mask | segmented
    return mask


def extract_street_features(
    data_dir: Path, input_size: int, segmenter, backbone_weights: Path | None, cache: Path | None,
    validation_percent: int = 15, *, include_validation: bool = False, seed: int = 0,
) -> FeatureSet:  # fmt: skip
    """Street crops (see street_crops) of the garments of every training photo, as extra training examples.

    Validation photos are left out (their crops would leak into training) unless include_validation, which the
    ranking's cross-validation uses to measure street accuracy."""

    def labelled() -> Iterator[tuple[GarmentCrop, LabeledCrop]]:
        rng = np.random.default_rng(seed)
        for image_id, pixels, garments in iter_labeled_garments(data_dir):
            validation = is_validation(image_id, validation_percent)
            if validation and not include_validation:
                continue
            for crop, kind, g in street_crops(pixels, garments, segmenter.segment(pixels), rng, input_size):
                yield crop, LabeledCrop(image_id, g.group.value, CATEGORIES.index(g.category), COLORS.index(g.color),
                                        extra=not validation, kind=kind)  # fmt: skip

    def compute() -> FeatureSet:
        result = featurize(build_backbone(input_size, default_weights_path(backbone_weights)), labelled())
        log.info("%d street-crop garment views from %s", len(result.items), data_dir)
        return result

    return _cached(cache, compute)


def train_heads(
    data: FeatureSet,
    *,
    input_size: int,
    out_dir: Path,
    epochs: int = 40,
    validation_percent: int = 15,
    seed: int = 0,
    source: str = "",
) -> ModelInfo:
    """Fit the category and color heads with class-balanced sample weights; save them with their metrics."""
    extra = np.array([item.extra for item in data.items])
    held_out = np.array([is_validation(item.image_id, validation_percent) for item in data.items]) & ~extra
    if held_out.all() or not held_out.any():
        held_out = np.zeros(len(data.items), dtype=bool)  # too few photos to hold any out: train on all
    flipped = np.array([item.flipped for item in data.items])
    polygon = np.array([item.kind == "polygon" for item in data.items])
    train, val = ~held_out, held_out & ~flipped & polygon
    heads = fit_heads(data, train, epochs=epochs, seed=seed)
    metrics = evaluate_heads(heads, data, val) if val.any() else {}
    metrics.pop("per_class", None)  # model.json keeps the summary; `kloset evaluate` gives the detail
    training = {
        "data": source,
        "trained_at": time.strftime("%Y-%m-%d"),
        "garments_train": int((train & ~flipped & ~extra).sum()),
        "extra_garments_train": int((train & ~flipped & extra & ~polygon).sum()),
        "extra_garments_by_kind": _count_kinds(data, train & extra & ~flipped),
        "garments_validation": int(val.sum()),
        "validation_percent": validation_percent,
        "epochs": epochs,
        "seed": seed,
        "validation": metrics,
    }
    return save_heads(out_dir, heads, input_size, training)


STREET_KINDS = ("segmenter", "jitter")


def fit_heads(
    data: FeatureSet, train: np.ndarray, *, epochs: int = 40, seed: int = 0, street_colors: bool = False
) -> keras.Model:
    """The heads fitted on the masked examples (shipped training and the ranking's cross-validation alike).

    Street crops teach the category head only unless street_colors: measured by cross-validation on CCP, their
    color (a mask that strays onto skin and background, named by the garment's color) cost 0.03 of color accuracy
    on polygon crops and gained none on street crops (docs/search.md)."""
    street = np.array([i.kind in STREET_KINDS for i in data.items])
    heads = _fit(data, train, epochs, seed, street_colors | ~street)
    if not street_colors and (train & street).any():
        # The color branch as if trained without the street crops: fitted on the other rows alone, so that the
        # longer epochs of the larger set do not overtrain it (its layers read only the color statistics).
        colored = _fit(data, train & ~street, epochs, seed, np.ones(len(data.items), dtype=bool))
        for name in COLOR_LAYERS:
            heads.get_layer(name).set_weights(colored.get_layer(name).get_weights())
    return heads


COLOR_LAYERS = ("color_stats_1", "color_1", "color")  # build_heads' color branch


def _fit(data: FeatureSet, train: np.ndarray, epochs: int, seed: int, color_rows: np.ndarray) -> keras.Model:
    keras.utils.set_random_seed(seed)
    y_cat = np.array([i.category for i in data.items])
    y_col = np.array([i.color for i in data.items])
    color_known = (y_col != NO_COLOR) & color_rows
    y_col = np.where(color_known, y_col, 0)
    heads = build_heads(data.features[train])
    heads.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss={"category": "sparse_categorical_crossentropy", "color": "sparse_categorical_crossentropy"},
    )
    heads.fit(
        {"features": data.features[train], "color_stats": data.color_stats[train]},
        {"category": y_cat[train], "color": y_col[train]},
        sample_weight={
            "category": _balanced(y_cat[train]),
            "color": _balanced(y_col[train]) * color_known[train],
        },
        epochs=epochs,
        batch_size=64,
        verbose=0,
    )
    return heads


def evaluate_heads(heads: keras.Model, data: FeatureSet, mask: np.ndarray) -> dict:
    """Figures of each head on the masked garments, the category restricted to the garment's known group."""
    out = heads.predict({"features": data.features[mask], "color_stats": data.color_stats[mask]}, verbose=0)
    items = [item for item, keep in zip(data.items, mask, strict=True) if keep]
    in_group = np.array([[CATEGORY_GROUP[c].value == item.group for c in CATEGORIES] for item in items])
    category_pred = np.argmax(np.where(in_group, out["category"], -1.0), axis=1)
    color_pred = np.argmax(out["color"], axis=1)
    return summarize(items, category_pred, color_pred)


def summarize(items: list[LabeledCrop], category_pred: np.ndarray, color_pred: np.ndarray) -> dict:
    """The figures `kloset evaluate` and model.json report, from true and predicted class indices."""
    category_true = np.array([i.category for i in items])
    color_true = np.array([i.color for i in items])
    groups = np.array([i.group for i in items])
    category, color = report(category_true, category_pred, CATEGORIES), report(color_true, color_pred, COLORS)
    figures = {
        "n": len(items),
        "category_accuracy": category["accuracy"],
        "color_accuracy": color["accuracy"],
        "category_macro_f1": category["macro_f1"],
        "color_macro_f1": color["macro_f1"],
    }
    for group in ("top", "bottom"):
        chosen = groups == group
        if chosen.any():
            figures[f"category_accuracy_{group}"] = round(
                float(np.mean(category_pred[chosen] == category_true[chosen])), 4
            )
    figures["per_class"] = {"category": category["per_class"], "color": color["per_class"]}
    return figures


def _count_kinds(data: FeatureSet, mask: np.ndarray) -> dict[str, int]:
    return dict(Counter(item.kind for item, chosen in zip(data.items, mask, strict=True) if chosen))


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
        flipped=np.array([i.flipped for i in data.items]),
        extra=np.array([i.extra for i in data.items]),
        kind=np.array([i.kind for i in data.items]),
        features=data.features,
        color_stats=data.color_stats,
        layout=np.array(FEATURE_LAYOUT),
    )


def _load_cache(path: Path) -> FeatureSet | None:
    """The cached feature set, or None if it was computed by another backbone."""
    with np.load(path) as z:
        if "layout" not in z or str(z["layout"]) != FEATURE_LAYOUT:
            return None
        extra = z["extra"]
        kinds = z["kind"] if "kind" in z else np.where(extra, "tag", "polygon")  # caches from before street crops
        items = [
            LabeledCrop(str(a), str(g), int(c), int(o), bool(f), bool(e), str(k))
            for a, g, c, o, f, e, k in zip(
                z["image_id"], z["group"], z["category"], z["color"], z["flipped"], extra, kinds, strict=True
            )
        ]
        return FeatureSet(items, z["features"], z["color_stats"])
