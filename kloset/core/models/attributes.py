"""The multi-output attribute model: image backbone -> shared dense layers -> category, color, embedding.

Only the heads are trained and shipped (models/attributes/heads.weights.h5 + model.json); the backbone's
ImageNet weights come from a package at install time (see backbone). model.json records the version that every
indexed garment carries.
"""

import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np

from kloset.core.errors import ModelError
from kloset.core.garments.color import COLOR_FEATURES_DIM, color_features, color_vector
from kloset.core.garments.crop import GarmentCrop
from kloset.core.garments.labels import CATEGORIES, CATEGORY_GROUP, COLORS, Group
from kloset.core.models.backbone import (
    EMBEDDING_DIM,
    FEATURE_DIM,
    FEATURE_LAYOUT,
    build_backbone,
    default_weights_path,
    preprocess,
)
from kloset.core.models.predictions import GarmentPrediction
from kloset.core.models.runtime import RunOptions, forward_of
from kloset.core.telemetry import Metrics

INFO_FILE = "model.json"
HEADS_FILE = "heads.weights.h5"
# How predictions are made from the weights; part of the version stored with every garment, because changing
# it changes the embeddings as much as new weights would. The runtime is not part of it: TFLite and the
# TensorFlow graph give the same embeddings (cosine 1.000, `kloset bench model`).
MIRROR_INFERENCE = "mirror-avg"  # the crop and its mirror image, their answers averaged
SINGLE_INFERENCE = "single-view"
DEFAULT_BATCH_SIZE = 16


@dataclass(frozen=True)
class ModelInfo:
    """What model.json says about a set of head weights; load() refuses weights that do not fit the code."""

    version: str
    input_size: int
    categories: list[str]
    colors: list[str]
    color_features_dim: int
    embedding_dim: int
    heads_sha256: str
    features: str = ""
    training: dict = field(default_factory=dict)


def build_heads(feature_sample: np.ndarray | None = None) -> keras.Model:
    """Category head: dense layers over the backbone's pooled features. Color head: over the garment's Lab histogram.

    Pooled activations differ in scale more than tenfold from channel to channel, so they are standardised
    first; feature_sample (training features) sets the standardisation, which is saved with the weights.
    """
    features = keras.Input((FEATURE_DIM,), name="features")
    color_stats = keras.Input((COLOR_FEATURES_DIM,), name="color_stats")
    standardize = keras.layers.Normalization(name="standardize")
    if feature_sample is not None:
        standardize.adapt(feature_sample)
    else:
        standardize.build((None, FEATURE_DIM))
    decay = keras.regularizers.l2(1e-3)
    shared = keras.layers.Dropout(0.5, name="input_dropout")(standardize(features))
    shared = keras.layers.Dense(256, activation="relu", kernel_regularizer=decay, name="shared_1")(shared)
    shared = keras.layers.Dropout(0.5, name="shared_dropout")(shared)
    category = keras.layers.Dense(len(CATEGORIES), activation="softmax", kernel_regularizer=decay, name="category")(
        shared
    )
    # Measured on the validation split: color from the Lab histogram alone beats histogram + deep features
    # (0.759 vs 0.728 with the earlier VGG16); pooled deep features blur hue, so the color branch does not read them.
    stats = keras.layers.Dense(256, activation="relu", name="color_stats_1")(color_stats)
    stats = keras.layers.Dropout(0.5, name="color_dropout")(stats)
    stats = keras.layers.Dense(128, activation="relu", name="color_1")(stats)
    color = keras.layers.Dense(len(COLORS), activation="softmax", name="color")(stats)
    return keras.Model([features, color_stats], {"category": category, "color": color}, name="heads")


def build_attribute_network(backbone: keras.Model, heads: keras.Model) -> keras.Model:
    """image + color statistics -> category, color, L2-normalised embedding, as one Keras model."""
    size = backbone.input_shape[1]
    image = keras.Input((size, size, 3), name="image")
    color_stats = keras.Input((COLOR_FEATURES_DIM,), name="color_stats")
    features = backbone(image)["features"]
    outputs = dict(heads([features, color_stats]))
    outputs["embedding"] = keras.layers.UnitNormalization(name="embedding")(features)
    return keras.Model([image, color_stats], outputs, name="kloset_attributes")


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks; ties weight files to their descriptions."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_checked_weights(model: keras.Model, path: Path, sha256: str, described_in: str) -> None:
    """Load weights only if the file is there and is the one its description names; else a clear ModelError."""
    if not path.is_file():
        raise ModelError(f"{path} is missing")
    if file_sha256(path) != sha256:
        raise ModelError(f"{path} does not match the checksum in {described_in}: the files were mixed up")
    try:
        model.load_weights(path)
    except (ValueError, OSError, KeyError) as exc:
        raise ModelError(f"{path} does not fit this code: {exc}") from None


def save_heads(model_dir: Path, heads: keras.Model, input_size: int, training: dict) -> ModelInfo:
    """Write heads.weights.h5 and model.json; the version is derived from the weights' content."""
    model_dir.mkdir(parents=True, exist_ok=True)
    heads_path = model_dir / HEADS_FILE
    heads.save_weights(heads_path)
    sha = file_sha256(heads_path)
    info = ModelInfo(
        version=f"attributes-{input_size}px-{sha[:10]}",
        input_size=input_size,
        categories=list(CATEGORIES),
        colors=list(COLORS),
        color_features_dim=COLOR_FEATURES_DIM,
        embedding_dim=EMBEDDING_DIM,
        heads_sha256=sha,
        training=training,
        features=FEATURE_LAYOUT,
    )
    (model_dir / INFO_FILE).write_text(json.dumps(asdict(info), indent=2, ensure_ascii=False) + "\n")
    return info


def read_info(model_dir: Path) -> ModelInfo:
    """Read and check model.json against the code's label lists and feature sizes."""
    path = model_dir / INFO_FILE
    if not path.is_file():
        raise ModelError(f"no attribute model at {model_dir}: {INFO_FILE} is missing (train one with `kloset train`)")
    try:
        info = ModelInfo(**json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as exc:
        raise ModelError(f"{path} is not a kloset model description: {exc}") from None
    mismatches = [
        name
        for name, theirs, ours in (
            ("categories", info.categories, list(CATEGORIES)),
            ("colors", info.colors, list(COLORS)),
            ("color_features_dim", info.color_features_dim, COLOR_FEATURES_DIM),
            ("embedding_dim", info.embedding_dim, EMBEDDING_DIM),
            ("features", info.features, FEATURE_LAYOUT),
        )
        if theirs != ours
    ]
    if mismatches:
        raise ModelError(f"model {info.version} does not match this code ({', '.join(mismatches)} differ): retrain it")
    return info


class AttributeModel:
    """Loaded weights plus the code to run them; safe to share between threads."""

    def __init__(
        self,
        info: ModelInfo,
        network: keras.Model,
        batch_size: int = DEFAULT_BATCH_SIZE,
        runtime: RunOptions | None = None,
        mirror: bool = False,
        metrics: Metrics | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.info = info
        self._network = network
        self.batch_size = batch_size  # garments per forward pass: bounds peak memory whatever a caller sends
        self.runtime = runtime or RunOptions()
        # A second view per garment, its mirror image (the training augmentation), answers averaged with the first.
        # Off by default: on the relevance benchmark it moved precision@10 by 0.01 or less (within the noise of 192
        # query garments) and near-duplicate recall@1 by +-0.01, for twice the model time (docs/search.md).
        self.mirror = mirror
        self._lock = threading.Lock()
        self._forward = forward_of(network, self.runtime)
        self._forward_seconds = (metrics or Metrics()).attribute_forward

    @property
    def views(self) -> int:
        """Backbone images per garment: the crop, and its mirror image unless that is turned off."""
        return 2 if self.mirror else 1

    @property
    def version(self) -> str:
        return f"{self.info.version}+{MIRROR_INFERENCE if self.mirror else SINGLE_INFERENCE}"

    @property
    def input_size(self) -> int:
        return self.info.input_size

    @classmethod
    def load(
        cls,
        model_dir: Path,
        backbone_weights: Path | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        runtime: RunOptions | None = None,
        mirror: bool = False,
        metrics: Metrics | None = None,
    ) -> "AttributeModel":
        """Load model.json + heads; raise ModelError with a clear message if anything is missing or off."""
        info = read_info(model_dir)
        heads = build_heads()
        load_checked_weights(heads, model_dir / HEADS_FILE, info.heads_sha256, INFO_FILE)
        backbone = build_backbone(info.input_size, default_weights_path(backbone_weights))
        return cls(info, build_attribute_network(backbone, heads), batch_size, runtime, mirror, metrics)

    def warm_up(self) -> None:
        """Trace the graph and size its buffers now, so the first request (or ingest batch) is not seconds slower."""
        blank = np.full((self.input_size, self.input_size, 3), 127, dtype=np.uint8)
        self.predict_inputs([ModelInput(blank, np.zeros(COLOR_FEATURES_DIM, dtype=np.float32), None)])

    def predict(self, crops: Sequence[GarmentCrop], groups: Sequence[Group | None]) -> list[GarmentPrediction]:
        """Classify and embed crops, at most batch_size per forward pass; a known group restricts the category."""
        return self.predict_inputs([model_input(c, g) for c, g in zip(crops, groups, strict=True)])

    def predict_inputs(self, inputs: Sequence["ModelInput"]) -> list[GarmentPrediction]:
        """predict() for crops whose color statistics are already computed (on the caller's thread)."""
        predictions: list[GarmentPrediction] = []
        for start in range(0, len(inputs), self.batch_size):
            predictions.extend(self._predict_batch(inputs[start : start + self.batch_size]))
        return predictions

    def _predict_batch(self, inputs: Sequence["ModelInput"]) -> list[GarmentPrediction]:
        # Each crop (and its mirror image, with mirror) in one pass; the views' answers are averaged.
        # Category, color and embedding all come from this one backbone pass per view.
        pixels = np.stack([i.pixels for i in inputs])
        views = np.concatenate([pixels, pixels[:, :, ::-1]]) if self.mirror else pixels
        stats = np.stack([i.color_stats for i in inputs])
        with self._lock, self._forward_seconds.time():
            out = self._forward(image=preprocess(views), color_stats=np.concatenate([stats] * self.views))
        n = len(inputs)
        category_p = _mean_of_views(out["category"], n)
        color_p = _mean_of_views(out["color"], n)
        embedding = _unit_rows(_mean_of_views(out["embedding"], n))
        return [
            _prediction(category_p[i], color_p[i], embedding[i], color_vector(stats[i]), inputs[i].group)
            for i in range(n)
        ]


@dataclass(frozen=True)
class ModelInput:
    """One garment as the network reads it: its letterboxed crop and color statistics, and its group if known."""

    pixels: np.ndarray  # (input_size, input_size, 3) uint8
    color_stats: np.ndarray  # (COLOR_FEATURES_DIM,) float32
    group: Group | None


def model_input(crop: GarmentCrop, group: Group | None) -> ModelInput:
    """The CPU work before a forward pass (color statistics), so it can run off the model's thread."""
    return ModelInput(crop.pixels, color_features(crop.garment_pixels), group)


def _unit_rows(embedding: np.ndarray) -> np.ndarray:
    """Each row at unit length, whatever the network gave. A featureless crop (a flat patch the segmenter took
    for a garment) pools to all-zero features: the TF graph normalises them to zeros, TFLite's L2_NORMALIZATION
    to NaN, and neither is a vector a store can search by or compare (cosine of a zero vector is undefined; Qdrant
    refuses NaN). Such a row becomes the uniform unit vector: featureless crops look alike, and like nothing else
    in particular."""
    embedding = np.nan_to_num(embedding, nan=0.0, posinf=0.0, neginf=0.0)
    norms = np.linalg.norm(embedding, axis=1, keepdims=True)
    flat = norms[:, 0] < 1e-12
    embedding[flat] = 1.0 / np.sqrt(embedding.shape[1])
    norms[flat] = 1.0
    return embedding / norms


def _mean_of_views(values: np.ndarray, n: int) -> np.ndarray:
    """(views * n, d) -> (n, d): the views of garment i are rows i, n + i, ..."""
    return values.reshape(-1, n, values.shape[-1]).mean(axis=0)


def _prediction(
    category_p: np.ndarray, color_p: np.ndarray, embedding: np.ndarray, colors: np.ndarray, group: Group | None
) -> GarmentPrediction:
    if group is None:
        group = CATEGORY_GROUP[CATEGORIES[int(np.argmax(category_p))]]
    in_group = [i for i, c in enumerate(CATEGORIES) if CATEGORY_GROUP[c] == group]
    category_p = category_p[in_group] / max(float(category_p[in_group].sum()), 1e-12)
    return GarmentPrediction(
        group=group,
        category_probabilities={CATEGORIES[i]: float(p) for i, p in zip(in_group, category_p, strict=True)},
        color_probabilities={c: float(p) for c, p in zip(COLORS, color_p, strict=True)},
        embedding=embedding.astype(np.float32),
        color_vector=colors,
    )
