"""PNG figures for people: confusion matrices of the attribute heads, segmentation overlays and crops."""

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window

import matplotlib.pyplot as plt
import numpy as np


def save_confusion(matrix: np.ndarray, labels: Sequence[str], path: Path, title: str) -> Path:
    """Row-normalised confusion matrix with counts, for the classes that occur (as truth or prediction)."""
    keep = np.flatnonzero(matrix.sum(axis=0) + matrix.sum(axis=1))
    matrix = matrix[np.ix_(keep, keep)]
    names = [labels[i] for i in keep]
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.5 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for (row, col), count in np.ndenumerate(matrix):
        if count:
            ax.text(col, row, str(count), ha="center", va="center", color="white" if rates[row, col] > 0.5 else "black",
                    fontsize=8)  # fmt: skip
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


_OVERLAY = {"top": (255, 80, 0), "bottom": (0, 140, 255)}


def save_segmentation(pixels: np.ndarray, masks: dict, out_dir: Path, stem: str) -> list[Path]:
    """The photo with each garment mask tinted, plus each garment's crop on the neutral background."""
    from PIL import Image

    from kloset.core.garments.crop import crop_garment
    from kloset.core.garments.regions import Region

    out_dir.mkdir(parents=True, exist_ok=True)
    overlay = pixels.astype(np.float32)
    written = []
    for group, mask in masks.items():
        overlay[mask] = 0.5 * overlay[mask] + 0.5 * np.array(_OVERLAY[group.value])
        crop = crop_garment(pixels, Region(group=group, mask=mask), max(mask.shape)).pixels
        path = out_dir / f"{stem}_{group.value}.png"
        Image.fromarray(crop).save(path)
        written.append(path)
    path = out_dir / f"{stem}_overlay.png"
    Image.fromarray(overlay.astype(np.uint8)).save(path)
    return [path, *written]
