"""The original project's retrieval, kept as a baseline: HSV histograms over crops saved in colour folders.

The student project cropped each catalog garment by its polygon, saved the crop as
`ROOT/<category>/<color>/<item>.png`, and at query time compared the OpenCV H-S histogram of the query crop
with that of every file in the folder of the query's category and colour, read from disk there and then,
combining the four `cv2.compareHist` methods. `HistogramFolders.search` does the same;
`HistogramFolders.search_cached` ranks identically from histograms kept in memory, to measure recall quickly.
"""

from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np
from scipy.stats import rankdata

HUE_BINS = 50
SATURATION_BINS = 60
# OpenCV's 8-bit hue runs over [0, 180); saturation over [0, 256).
HISTOGRAM_RANGES = [0, 180, 0, 256]

# (method, higher is better)
COMPARISONS = (
    (cv2.HISTCMP_CORREL, True),
    (cv2.HISTCMP_CHISQR, False),
    (cv2.HISTCMP_INTERSECT, True),
    (cv2.HISTCMP_BHATTACHARYYA, False),
)

SLASH_IN_FILE_NAME = "__"


def hsv_histogram(pixels: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """The min-max normalised 50 x 60 hue-saturation histogram of (H, W, 3) uint8 RGB pixels, float32.

    With a mask (H, W; nonzero = garment), only the pixels inside it count.
    """
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise ValueError(f"pixels must be (H, W, 3) uint8 RGB, got {pixels.shape} {pixels.dtype}")
    hsv = cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_RGB2HSV)
    cv_mask = None if mask is None else _binary_mask(mask, pixels.shape[:2])
    histogram = cv2.calcHist([hsv], [0, 1], cv_mask, [HUE_BINS, SATURATION_BINS], HISTOGRAM_RANGES)
    cv2.normalize(histogram, histogram, 0, 1, cv2.NORM_MINMAX)
    return histogram.astype(np.float32, copy=False)


def combined_similarity(query: np.ndarray, candidates: Sequence[np.ndarray]) -> np.ndarray:
    """One score per candidate histogram, higher = more similar: minus the mean rank over the four methods.

    The original's weighting of the four methods is unknown, and their scales differ by orders of magnitude
    (chi-square is unbounded, the others are not), so each method's scores become ranks over the candidates
    (1 = best, ties averaged) and the ranks are averaged: a Borda count, where no method dominates by scale.
    Scores are therefore relative to the candidate set.
    """
    if not candidates:
        return np.zeros(0, dtype=np.float64)
    ranks = np.empty((len(COMPARISONS), len(candidates)), dtype=np.float64)
    for row, (method, higher_is_better) in enumerate(COMPARISONS):
        scores = np.array([cv2.compareHist(query, candidate, method) for candidate in candidates])
        badness = -scores if higher_is_better else scores
        # An empty histogram makes correlation NaN: rank it last rather than let NaN poison the sort.
        badness = np.where(np.isnan(badness), np.inf, badness)
        ranks[row] = rankdata(badness, method="average")
    return -ranks.mean(axis=0)


class HistogramFolders:
    """Crops saved as `root/<category>/<color>/<item>.png`, searched like the original project."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        # item id -> (category, color, histogram computed at write time)
        self._cache: dict[str, tuple[str, str, np.ndarray]] = {}

    def write(self, item_id: str, category: str, color: str, crop_pixels: np.ndarray, mask: np.ndarray | None) -> Path:
        """Save an RGB crop as a PNG (outside the mask black, the mask as alpha) and cache its histogram."""
        _check_folder_name(category)
        _check_folder_name(color)
        path = self.root / category / color / f"{item_file_stem(item_id)}.png"
        pixels, cv_mask = _bake_mask(crop_pixels, mask)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(path), _to_cv_image(pixels, cv_mask)):
            raise OSError(f"could not write {path}")
        previous = self._cache.get(item_id)
        if previous is not None and previous[:2] != (category, color):
            (self.root / previous[0] / previous[1] / path.name).unlink(missing_ok=True)
        # From the baked pixels, so it equals what `search` computes from the PNG (lossless) at query time.
        self._cache[item_id] = (category, color, hsv_histogram(pixels, cv_mask))
        return path

    def search(
        self, query_hist: np.ndarray, categories: Sequence[str] | None, colors: Sequence[str] | None, limit: int
    ) -> list[tuple[str, float]]:
        """The best `limit` (item id, score), reading and histogramming every PNG in the matching folders now.

        None for categories or colors means every folder at that level.
        """
        items = {}
        for path in self._matching_files(categories, colors):
            pixels, mask = read_crop(path)
            items[item_id_from_file_stem(path.stem)] = hsv_histogram(pixels, mask)
        return _best(query_hist, items, limit)

    def search_cached(
        self, query_hist: np.ndarray, categories: Sequence[str] | None, colors: Sequence[str] | None, limit: int
    ) -> list[tuple[str, float]]:
        """As `search`, with the same ranking, over the histograms written by this object (no disk reads)."""
        items = {
            item_id: histogram
            for item_id, (category, color, histogram) in self._cache.items()
            if (categories is None or category in categories) and (colors is None or color in colors)
        }
        return _best(query_hist, items, limit)

    def _matching_files(self, categories: Sequence[str] | None, colors: Sequence[str] | None) -> Iterable[Path]:
        for category_dir in _subfolders(self.root, categories):
            for color_dir in _subfolders(category_dir, colors):
                yield from sorted(color_dir.glob("*.png"))


def read_crop(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """A crop written by `HistogramFolders.write`: RGB pixels and the mask from the alpha channel, if any."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise OSError(f"could not read {path}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB), None
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB), image[:, :, 3].copy()
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), None


def item_file_stem(item_id: str) -> str:
    """The file name (without .png) for an item id: '/' becomes '__', so '0001/top' is '0001__top'."""
    stem = item_id.replace("/", SLASH_IN_FILE_NAME)
    # Ids such as 'a__b' or 'a_/b' would not come back unchanged from the file name.
    if not item_id or "\0" in item_id or item_id_from_file_stem(stem) != item_id:
        raise ValueError(f"item id {item_id!r} cannot be stored as a file name")
    return stem


def item_id_from_file_stem(stem: str) -> str:
    """The inverse of `item_file_stem`."""
    return stem.replace(SLASH_IN_FILE_NAME, "/")


def _best(query_hist: np.ndarray, items: dict[str, np.ndarray], limit: int) -> list[tuple[str, float]]:
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    # A fixed candidate order, so both search paths compute exactly the same numbers.
    item_ids = sorted(items)
    scores = combined_similarity(query_hist, [items[item_id] for item_id in item_ids])
    ranked = sorted(zip(item_ids, scores.tolist(), strict=True), key=lambda pair: (-pair[1], pair[0]))
    return ranked[:limit]


def _subfolders(folder: Path, names: Sequence[str] | None) -> list[Path]:
    if names is None:
        return sorted(path for path in folder.iterdir() if path.is_dir()) if folder.is_dir() else []
    return [folder / name for name in sorted(set(names)) if (folder / name).is_dir()]


def _check_folder_name(name: str) -> None:
    if not name or "/" in name or "\0" in name or name in {".", ".."}:
        raise ValueError(f"{name!r} cannot be a folder name")


def _binary_mask(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if mask.shape != shape:
        raise ValueError(f"mask shape {mask.shape} does not match pixels {shape}")
    return np.where(mask > 0, 255, 0).astype(np.uint8)


def _bake_mask(pixels: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise ValueError(f"crop must be (H, W, 3) uint8 RGB, got {pixels.shape} {pixels.dtype}")
    if mask is None:
        return pixels, None
    cv_mask = _binary_mask(mask, pixels.shape[:2])
    baked = pixels.copy()
    baked[cv_mask == 0] = 0
    return baked, cv_mask


def _to_cv_image(pixels: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    if mask is None:
        return cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    return np.dstack([cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR), mask])
