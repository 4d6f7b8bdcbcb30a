"""A small synthetic catalog in the K-Fashion layout: drawn tops and bottoms of known category and color.

For newcomers without K-Fashion data, and for tests that must run everywhere. Shapes differ by category
(sleeves, legs, flare) and fabrics by color, so a model can learn both from a few dozen images.
"""

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from kloset.core.garments.kfashion import label_document
from kloset.core.garments.labels import korean_category, korean_color

WIDTH, HEIGHT = 240, 320
SAMPLE_COLORS: dict[str, tuple[int, int, int]] = {
    "white": (236, 236, 232),
    "black": (28, 28, 30),
    "red": (195, 30, 40),
    "navy": (30, 40, 80),
    "beige": (215, 195, 160),
    "green": (40, 135, 70),
    "yellow": (240, 205, 50),
    "pink": (235, 150, 180),
}
# Outlines on a unit canvas (x right, y down), scaled onto the figure. Tops span y 0..1 of the torso box.
_TOPS: dict[str, list[tuple[float, float]]] = {
    "t_shirt": [
        (0.3, 0),
        (0.7, 0),
        (1.0, 0.15),
        (0.9, 0.35),
        (0.8, 0.3),
        (0.8, 1),
        (0.2, 1),
        (0.2, 0.3),
        (0.1, 0.35),
        (0.0, 0.15),
    ],
    "knitwear": [
        (0.3, 0),
        (0.7, 0),
        (1.0, 0.2),
        (1.0, 0.95),
        (0.88, 0.95),
        (0.82, 0.35),
        (0.8, 1),
        (0.2, 1),
        (0.18, 0.35),
        (0.12, 0.95),
        (0.0, 0.95),
        (0.0, 0.2),
    ],
    "top": [(0.35, 0), (0.45, 0), (0.5, 0.12), (0.55, 0), (0.65, 0), (0.75, 0.3), (0.75, 1), (0.25, 1), (0.25, 0.3)],
}
_BOTTOMS: dict[str, list[tuple[float, float]]] = {
    "pants": [(0.2, 0), (0.8, 0), (0.85, 1), (0.56, 1), (0.5, 0.25), (0.44, 1), (0.15, 1)],
    "skirt": [(0.25, 0), (0.75, 0), (1.0, 0.6), (0.0, 0.6)],
    "leggings": [(0.28, 0), (0.72, 0), (0.66, 1), (0.54, 1), (0.5, 0.2), (0.46, 1), (0.34, 1)],
}


def write_sample_catalog(root: Path, n: int = 40, seed: int = 0) -> list[Path]:
    """Write n photos with labels under root/images and root/labels; every 10th has only a dress (skipped)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(1, n + 1):
        stem = f"{i:04d}"
        image, garments = _draw(rng, dress_only=i % 10 == 0)
        image.save(root / "images" / f"{stem}.jpg", quality=92)
        doc = label_document(f"{stem}.jpg", WIDTH, HEIGHT, garments, image_number=i)
        (root / "labels" / f"{stem}.json").write_text(json.dumps(doc, ensure_ascii=False))
        written.append(root / "images" / f"{stem}.jpg")
    return written


def _draw(rng: np.random.Generator, dress_only: bool):
    base = rng.integers(150, 220)
    pixels = np.clip(rng.normal(base, 12, (HEIGHT, WIDTH, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    cx = WIDTH / 2 + rng.uniform(-20, 20)
    scale = rng.uniform(0.85, 1.1)
    torso_w, torso_h = 110 * scale, 100 * scale
    top_y = 40 + rng.uniform(-10, 10)
    if dress_only:
        dress = _place(_BOTTOMS["skirt"], cx, top_y, torso_w * 1.2, torso_h * 2.2)
        color = list(SAMPLE_COLORS)[int(rng.integers(len(SAMPLE_COLORS)))]
        _fill(draw, dress, SAMPLE_COLORS[color], rng)
        return image, {"원피스": ([dress], "드레스", korean_color(color))}
    top_cat = list(_TOPS)[int(rng.integers(len(_TOPS)))]
    bottom_cat = list(_BOTTOMS)[int(rng.integers(len(_BOTTOMS)))]
    top_color, bottom_color = rng.choice(list(SAMPLE_COLORS), size=2, replace=False)
    bottom = _place(_BOTTOMS[bottom_cat], cx, top_y + torso_h - 2, torso_w * 0.9, torso_h * 1.5)
    top = _place(_TOPS[top_cat], cx, top_y, torso_w, torso_h)
    _fill(draw, bottom, SAMPLE_COLORS[bottom_color], rng)
    _fill(draw, top, SAMPLE_COLORS[top_color], rng)
    # The top is drawn over the bottom's waistband, so the bottom's polygon keeps only its visible part.
    return image, {
        "상의": ([top], korean_category(top_cat), korean_color(top_color)),
        "하의": ([_below(bottom, top_y + torso_h)], korean_category(bottom_cat), korean_color(bottom_color)),
    }


def _place(outline, cx: float, y: float, width: float, height: float) -> np.ndarray:
    unit = np.asarray(outline, dtype=np.float64)
    points = np.stack([cx + (unit[:, 0] - 0.5) * width, y + unit[:, 1] * height], axis=1)
    return np.round(np.clip(points, 0, [WIDTH - 1, HEIGHT - 1]))


def _below(polygon: np.ndarray, y: float) -> np.ndarray:
    clipped = polygon.copy()
    clipped[:, 1] = np.maximum(clipped[:, 1], np.round(y))
    return clipped


def _fill(draw: ImageDraw.ImageDraw, polygon: np.ndarray, rgb: tuple[int, int, int], rng: np.random.Generator):
    shade = rng.uniform(0.9, 1.08)
    color = tuple(int(np.clip(c * shade, 0, 255)) for c in rgb)
    draw.polygon([tuple(p) for p in polygon], fill=color)
