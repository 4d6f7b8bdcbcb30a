"""Color statistics of a garment's own pixels, the color head's second input.

Deep features pooled over a crop blur hue; a histogram in CIELAB of only the masked pixels keeps it.
"""

import numpy as np

_L_EDGES = np.array([25.0, 50.0, 75.0])
_AB_EDGES = np.array([-25.0, -10.0, -3.0, 3.0, 10.0, 25.0])
_L_BINS, _AB_BINS = len(_L_EDGES) + 1, len(_AB_EDGES) + 1
_HISTOGRAM_DIM = _L_BINS * _AB_BINS * _AB_BINS
COLOR_FEATURES_DIM = _HISTOGRAM_DIM + 6
COLOR_VECTOR_DIM = _HISTOGRAM_DIM

# sRGB (D65) to XYZ, then XYZ normalised by the D65 white point.
_RGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
)
_WHITE = np.array([0.95047, 1.0, 1.08883])


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """Convert (N, 3) uint8 sRGB to (N, 3) CIELAB (D65)."""
    c = rgb.astype(np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _RGB_TO_XYZ.T / _WHITE
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1)


def color_features(pixels: np.ndarray) -> np.ndarray:
    """A normalised joint Lab histogram plus the mean and spread of L, a, b (scaled to about [-1, 1])."""
    features = np.zeros(COLOR_FEATURES_DIM, dtype=np.float32)
    if len(pixels) == 0:
        return features
    lab = rgb_to_lab(pixels)
    li = np.digitize(lab[:, 0], _L_EDGES)
    ai = np.digitize(lab[:, 1], _AB_EDGES)
    bi = np.digitize(lab[:, 2], _AB_EDGES)
    flat = (li * _AB_BINS + ai) * _AB_BINS + bi
    hist = np.bincount(flat, minlength=_L_BINS * _AB_BINS * _AB_BINS).astype(np.float32)
    features[: hist.size] = hist / hist.sum()
    features[hist.size : hist.size + 3] = lab.mean(axis=0) / 100.0
    features[hist.size + 3 :] = lab.std(axis=0) / 100.0
    return features


def color_vector(features: np.ndarray) -> np.ndarray:
    """The garment's color as a unit vector for the store: the square root of its Lab histogram.

    The histogram sums to 1, so its square root has unit length and the dot product of two such vectors is the
    Bhattacharyya coefficient of the histograms: 1 for identical colors, 0 for disjoint ones.
    """
    vector = np.sqrt(np.clip(features[:_HISTOGRAM_DIM], 0.0, None)).astype(np.float32)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector
