"""Training and measuring the segmenter on K-Fashion polygons (background / top / bottom).

The frozen encoder's maps are computed once per photo and kept in memory (float16); only the decoder trains,
with mirrored maps as augmentation and class-balanced pixel weights.
"""

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from PIL import Image

from kloset.core.garments.crop import garment_mask
from kloset.core.garments.images import decode_image
from kloset.core.garments.labels import Group
from kloset.core.limits import InputLimits
from kloset.core.models.backbone import NAME as BACKBONE
from kloset.core.models.backbone import TAPS, default_weights_path, preprocess
from kloset.core.models.segmenter import (
    CLASSES,
    Letterbox,
    SegmenterInfo,
    build_decoder,
    build_encoder,
    check_input_shape,
    save_segmenter,
)
from kloset.core.models.training import is_validation, iter_labels

log = logging.getLogger(__name__)
_IGNORE = 255  # letterbox padding: neither trained on nor scored


@dataclass(frozen=True)
class SegmentationSet:
    image_ids: list[str]
    maps: list[np.ndarray]  # the encoder's maps at 1/4 ... 1/32 (see backbone.TAPS), (N, h, w, c) float16
    targets: np.ndarray  # (N, H/4, W/4) uint8 class ids, _IGNORE on padding


_UNINDEXED_CLASS = {"아우터": CLASSES.index("outer"), "원피스": CLASSES.index("one_piece")}


def target_mask(image_shape: tuple[int, int], label) -> np.ndarray:
    """(H, W) uint8 class ids (see CLASSES), rasterised from the label's polygons; tops win where shapes touch."""
    target = np.zeros(image_shape, dtype=np.uint8)
    for korean, region in label.unindexed_regions.items():
        target[garment_mask(*image_shape, region)] = _UNINDEXED_CLASS[korean]
    for garment in sorted(label.garments, key=lambda g: g.group is Group.TOP):
        target[garment_mask(*image_shape, garment.region)] = 1 if garment.group is Group.TOP else 2
    return target


def iter_annotated_photos(data_dir: Path, max_pixels: int = InputLimits.max_pixels):
    """(image id, pixels, target mask) for every labelled photo, outer/one-piece-only photos included."""
    for image_id, label, image_path in iter_labels(data_dir):
        pixels = decode_image(image_path.read_bytes(), max_pixels)
        yield image_id, pixels, target_mask(pixels.shape[:2], label)


def extract_maps(
    data_dir: Path, height: int, width: int, backbone_weights: Path | None, cache: Path | None = None
) -> SegmentationSet:
    """Encoder maps and quarter-resolution targets of every annotated photo, reusing a cache file if present."""
    check_input_shape(height, width)
    if cache is not None and cache.is_file():
        with np.load(cache) as z:
            backbone = str(z["backbone"]) if "backbone" in z else ""
            if backbone == BACKBONE and z["targets"].shape[1:] == (height // 4, width // 4):
                return SegmentationSet(list(z["image_ids"]), [z[name] for name in TAPS], z["targets"])
        log.info("%s holds maps of another backbone or size: computing them again", cache)
    encoder = build_encoder(height, width, default_weights_path(backbone_weights))
    ids, batches, targets, pending = [], [[] for _ in TAPS], [], []
    started = time.monotonic()

    def flush() -> None:
        if pending:
            for store, output in zip(batches, encoder(preprocess(np.stack(pending)), training=False), strict=True):
                store.append(np.asarray(output).astype(np.float16))
            pending.clear()

    for image_id, pixels, target in iter_annotated_photos(data_dir):
        box = Letterbox.fit(*pixels.shape[:2], height, width)
        pending.append(box.apply(pixels, height, width))
        padded = np.full((height, width), _IGNORE, dtype=np.uint8)
        padded[box.top : box.top + box.height, box.left : box.left + box.width] = np.asarray(
            Image.fromarray(target).resize((box.width, box.height), Image.NEAREST)
        )
        targets.append(padded[2::4, 2::4])  # the class at the centre of each 4x4 cell
        ids.append(image_id)
        if len(pending) >= 16:
            flush()
    flush()
    log.info("encoder maps of %d photos in %.0f s", len(ids), time.monotonic() - started)
    result = SegmentationSet(ids, [np.concatenate(b) for b in batches], np.stack(targets))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, image_ids=np.array(ids), targets=result.targets, backbone=np.array(BACKBONE),
                 **dict(zip(TAPS, result.maps, strict=True)))  # fmt: skip
    return result


def train_segmenter(
    data: SegmentationSet,
    *,
    height: int,
    width: int,
    out_dir: Path,
    epochs: int = 30,
    validation_percent: int = 15,
    seed: int = 0,
    source: str = "",
) -> SegmenterInfo:
    """Fit the decoder (mirror augmentation, class-balanced pixel weights) and save it with validation figures."""
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    val = np.array([is_validation(i, validation_percent) for i in data.image_ids])
    if val.all() or not val.any():
        val = np.zeros(len(data.image_ids), dtype=bool)
    train_idx = np.flatnonzero(~val)
    counts = np.bincount(data.targets[train_idx][data.targets[train_idx] != _IGNORE].ravel(), minlength=len(CLASSES))
    class_weights = (1.0 / np.sqrt(np.maximum(counts, 1))).astype(np.float32)
    class_weights /= class_weights[counts > 0].mean()
    decoder = build_decoder(height, width, tuple(m.shape[-1] for m in data.maps))
    decoder.compile(optimizer=keras.optimizers.Adam(1e-3), loss=_weighted_loss(class_weights))
    for epoch in range(epochs):
        rng.shuffle(train_idx)
        losses = [decoder.train_on_batch(*_batch(data, batch, rng)) for batch in np.array_split(
            train_idx, max(1, len(train_idx) // 16))]  # fmt: skip
        log.info("epoch %d/%d loss %.4f", epoch + 1, epochs, float(np.mean(losses)))
    figures = score(decoder, data, val) if val.any() else {}
    training = {
        "data": source,
        "trained_at": time.strftime("%Y-%m-%d"),
        "photos_train": int((~val).sum()),
        "photos_validation": int(val.sum()),
        "validation_percent": validation_percent,
        "epochs": epochs,
        "seed": seed,
        "validation_quarter_resolution": figures,
    }
    return save_segmenter(out_dir, decoder, height, width, training)


def _batch(data: SegmentationSet, idx: np.ndarray, rng: np.random.Generator):
    flip = rng.random(len(idx)) < 0.5
    maps = []
    for m in data.maps:
        chunk = m[idx].astype(np.float32)
        chunk[flip] = chunk[flip][:, :, ::-1]
        maps.append(chunk)
    targets = data.targets[idx].copy()
    targets[flip] = targets[flip][:, :, ::-1]
    return maps, targets.astype(np.int32)


def _weighted_loss(class_weights: np.ndarray):
    weights = keras.ops.convert_to_tensor(class_weights)

    def loss(y_true, logits):
        y_true = keras.ops.cast(y_true, "int32")
        valid = keras.ops.cast(keras.ops.not_equal(y_true, _IGNORE), "float32")
        safe = keras.ops.where(keras.ops.equal(y_true, _IGNORE), 0, y_true)
        ce = keras.losses.sparse_categorical_crossentropy(safe, logits, from_logits=True)
        w = keras.ops.take(weights, safe) * valid
        return keras.ops.sum(ce * w) / keras.ops.maximum(keras.ops.sum(w), 1.0)

    return loss


def score(decoder: keras.Model, data: SegmentationSet, chosen: np.ndarray) -> dict:
    """IoU of top and bottom and pixel accuracy over the chosen photos, at the decoder's 1/4 resolution."""
    predicted, truth = [], []
    for idx in np.array_split(np.flatnonzero(chosen), max(1, int(chosen.sum()) // 16)):
        logits = decoder.predict([m[idx].astype(np.float32) for m in data.maps], verbose=0)
        predicted.append(np.argmax(logits, axis=-1))
        truth.append(data.targets[idx])
    return segmentation_figures(np.concatenate(truth), np.concatenate(predicted))


def segmentation_figures(truth: np.ndarray, predicted: np.ndarray) -> dict:
    """Data-set level IoU of top and bottom (intersections and unions summed over all photos); pixel accuracy
    over background / top / bottom, outerwear and one-pieces counting as background as they do for search."""
    valid = truth != _IGNORE
    truth = np.where(valid & (truth > 2), 0, truth)
    predicted = np.where(predicted > 2, 0, predicted)
    figures = {"n": len(truth)}
    ious = []
    for index, name in ((1, "top"), (2, "bottom")):
        t, p = (truth == index) & valid, (predicted == index) & valid
        union = int((t | p).sum())
        iou = (t & p).sum() / union if union else 0.0
        figures[f"iou_{name}"] = round(float(iou), 4)
        ious.append(iou)
    figures["miou"] = round(float(np.mean(ious)), 4)
    figures["pixel_accuracy"] = round(float((truth[valid] == predicted[valid]).mean()), 4)
    return figures


def evaluate_segmenter(segmenter, data_dir: Path, split: str = "all") -> dict:
    """Full-resolution figures of the shipped segmenter (post-processing included) on a K-Fashion folder."""
    percent = int(segmenter.info.training.get("validation_percent", 15))
    truth, predicted, n = [], [], 0
    for image_id, pixels, target in iter_annotated_photos(data_dir):
        if split == "validation" and not is_validation(image_id, percent):
            continue
        masks = segmenter.segment(pixels)
        guess = np.zeros(target.shape, dtype=np.uint8)
        if Group.BOTTOM in masks:
            guess[masks[Group.BOTTOM]] = 2
        if Group.TOP in masks:
            guess[masks[Group.TOP]] = 1
        truth.append(target.ravel())
        predicted.append(guess.ravel())
        n += 1
    figures = segmentation_figures(np.concatenate(truth), np.concatenate(predicted))
    return {"model_version": segmenter.version, "split": split, **figures, "n": n}
