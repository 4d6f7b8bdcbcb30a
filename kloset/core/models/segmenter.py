"""Finding the top and the bottom in a photo nobody annotated: a U-Net-style decoder on the frozen backbone.

The original project trained a U-Net (background / top / bottom) on the K-Fashion polygons and cropped the
largest connected component of each class after a morphological opening; this does the same on the same
backbone as the attribute model. The photo is letterboxed (aspect kept) to a fixed size; the encoder's maps
at 1/4, 1/8, 1/16 and 1/32 feed a small decoder that predicts classes at 1/4 resolution, upsampled back to
the photo.
"""

import json
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np
from PIL import Image
from scipy import ndimage

from kloset.core.errors import ModelError
from kloset.core.garments.crop import NEUTRAL_RGB
from kloset.core.garments.labels import Group
from kloset.core.garments.regions import Region
from kloset.core.models.attributes import file_sha256, load_checked_weights
from kloset.core.models.backbone import NAME as BACKBONE
from kloset.core.models.backbone import STRIDE, TAPS, build_network, default_weights_path, preprocess
from kloset.core.models.runtime import RunOptions, forward_of
from kloset.core.telemetry import Metrics

INFO_FILE = "segmenter.json"
WEIGHTS_FILE = "decoder.weights.h5"
# Outerwear and one-pieces get classes of their own: lumped into background, a coat over a sweater taught the
# model that garment-looking pixels can be "nothing", and it confused the two.
CLASSES = ("background", "top", "bottom", "outer", "one_piece")
# How masks are made from the weights; part of the reported version, as changing it changes the masks.
INFERENCE = "mirror-avg+fallback-0.2"
# A garment smaller than this share of the photo is noise, not a garment to search for.
MIN_AREA_FRACTION = 0.01
# A group that wins no garment-sized part of the photo is looked for again where it has at least this probability:
# a top under an open jacket is often "outer" by a small margin. Measured with `kloset bench retrieval` on CCP
# (first 200 photos, whole-photo queries): group found 291 -> 306 of 325, recall@1 0.739 -> 0.769.
FALLBACK_PROBABILITY = 0.2


@dataclass(frozen=True)
class SegmenterInfo:
    version: str
    height: int
    width: int
    classes: list[str]
    weights_sha256: str
    training: dict = field(default_factory=dict)
    backbone: str = ""


@dataclass(frozen=True)
class Letterbox:
    """Where a photo sits inside the fixed-size segmenter input."""

    scale: float
    left: int
    top: int
    width: int
    height: int

    @classmethod
    def fit(cls, photo_height: int, photo_width: int, height: int, width: int) -> "Letterbox":
        """The largest placement of a photo inside height x width that keeps its aspect ratio."""
        scale = min(height / photo_height, width / photo_width)
        w, h = max(1, round(photo_width * scale)), max(1, round(photo_height * scale))
        return cls(scale, (width - w) // 2, (height - h) // 2, w, h)

    def apply(self, pixels: np.ndarray, height: int, width: int, fill=NEUTRAL_RGB, resample=Image.BILINEAR):
        """The photo (or a label plane) resized and placed on a height x width canvas."""
        image = Image.fromarray(pixels).resize((self.width, self.height), resample)
        canvas = Image.new(image.mode, (width, height), fill if image.mode == "RGB" else 0)
        canvas.paste(image, (self.left, self.top))
        return np.asarray(canvas)

    def undo(self, plane: np.ndarray, photo_height: int, photo_width: int) -> np.ndarray:
        """Cut the photo's part out of an (H, W) float plane and resize it to the photo."""
        part = plane[self.top : self.top + self.height, self.left : self.left + self.width]
        return np.asarray(Image.fromarray(part.astype(np.float32)).resize((photo_width, photo_height), Image.BILINEAR))


def check_input_shape(height: int, width: int) -> None:
    """The decoder retraces the encoder's strides, so both sides must be whole multiples of the largest."""
    if height % STRIDE or width % STRIDE or height < STRIDE or width < STRIDE:
        raise ModelError(f"segmenter input {height}x{width}: both sides must be positive multiples of {STRIDE}")


def build_encoder(height: int, width: int, weights: Path) -> keras.Model:
    """The frozen backbone returning its maps at 1/4, 1/8, 1/16 and 1/32 of the input, in that order."""
    check_input_shape(height, width)
    network = build_network(height, width, weights)
    encoder = keras.Model(network.input, [network.output[name] for name in TAPS], name="encoder")
    encoder.trainable = False
    return encoder


def build_decoder(height: int, width: int, channels: tuple[int, ...]) -> keras.Model:
    """1/32 + context -> up -> + 1/16 -> up -> + 1/8 -> up -> + 1/4 -> class logits at 1/4 resolution.

    The dilated convolution at 1/32 lets each pixel see the whole figure: whether a torso region is the top or
    a coat over it depends on what surrounds it.
    """
    check_input_shape(height, width)
    inputs = [keras.Input((height // s, width // s, c), name=name)
              for (name, s), c in zip(TAPS.items(), channels, strict=True)]  # fmt: skip
    conv = keras.layers.Conv2D
    x = conv(128, 1, activation="relu", name="reduce32")(inputs[3])
    x = conv(128, 3, padding="same", dilation_rate=2, activation="relu", name="context")(x)
    for (skip, width_), name in zip(
        ((inputs[2], 128), (inputs[1], 64), (inputs[0], 32)), ("16", "8", "4"), strict=True
    ):
        x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"up{name}")(x)
        x = keras.layers.Concatenate(name=f"skip{name}")(
            [x, conv(width_, 1, activation="relu", name=f"reduce{name}")(skip)]
        )
        x = conv(max(width_, 64), 3, padding="same", activation="relu", name=f"fuse{name}")(x)
    x = keras.layers.Dropout(0.2, name="dropout")(x)
    logits = conv(len(CLASSES), 1, name="logits")(x)
    return keras.Model(inputs, logits, name="decoder")


def encoder_channels(encoder: keras.Model) -> tuple[int, ...]:
    return tuple(int(shape[-1]) for shape in encoder.output_shape)


def save_segmenter(out_dir: Path, decoder: keras.Model, height: int, width: int, training: dict) -> SegmenterInfo:
    """Write decoder.weights.h5 and segmenter.json; the version is derived from the weights' content."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / WEIGHTS_FILE
    decoder.save_weights(path)
    sha = file_sha256(path)
    info = SegmenterInfo(f"segmenter-{height}x{width}-{sha[:10]}", height, width, list(CLASSES), sha, training,
                         BACKBONE)  # fmt: skip
    (out_dir / INFO_FILE).write_text(json.dumps(asdict(info), indent=2, ensure_ascii=False) + "\n")
    return info


def segmenter_network(encoder: keras.Model, decoder: keras.Model) -> keras.Model:
    """Encoder and decoder as one network with a named output, the form both runtimes take.

    As a TensorFlow graph instead of eager Keras calls: 157 ms for the photo and its mirror on 2 cores -> 43 ms.
    """
    logits = decoder(encoder(encoder.input))
    return keras.Model(encoder.input, {"logits": logits}, name="kloset_segmenter")


def largest_component(mask: np.ndarray, opening: int) -> np.ndarray:
    """The largest connected part of a mask after a morphological opening (drops specks and thin bridges)."""
    if opening > 0:
        mask = ndimage.binary_opening(mask, structure=np.ones((opening, opening), dtype=bool))
    labels, count = ndimage.label(mask)
    if count == 0:
        return mask
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
    return labels == (1 + int(np.argmax(sizes)))


class Segmenter:
    """Loaded decoder plus encoder; safe to share between threads."""

    def __init__(
        self,
        info: SegmenterInfo,
        encoder: keras.Model,
        decoder: keras.Model,
        runtime: RunOptions | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.info = info
        self._forward_seconds = (metrics or Metrics()).segmenter_forward
        self._encoder = encoder
        self._decoder = decoder
        self._lock = threading.Lock()
        self.runtime = runtime or RunOptions()
        self._forward = forward_of(self.network(), self.runtime)

    def network(self) -> keras.Model:
        """Encoder and decoder as one network, photo in and class scores out: what a runtime converts and runs."""
        return segmenter_network(self._encoder, self._decoder)

    @property
    def version(self) -> str:
        return f"{self.info.version}+{INFERENCE}"

    @classmethod
    def load(
        cls,
        model_dir: Path,
        backbone_weights: Path | None = None,
        runtime: RunOptions | None = None,
        metrics: Metrics | None = None,
    ) -> "Segmenter":
        """Load segmenter.json + decoder weights; ModelError with a clear message if anything is missing or off."""
        path = model_dir / INFO_FILE
        if not path.is_file():
            raise ModelError(f"no segmenter at {model_dir}: {INFO_FILE} is missing (train one with `kloset train`)")
        try:
            info = SegmenterInfo(**json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError) as exc:
            raise ModelError(f"{path} is not a kloset segmenter description: {exc}") from None
        if info.classes != list(CLASSES):
            raise ModelError(f"segmenter {info.version} has classes {info.classes}, this code {list(CLASSES)}")
        if info.backbone != BACKBONE:
            raise ModelError(f"segmenter {info.version} was trained on {info.backbone or 'VGG16'}, "
                             f"this code runs {BACKBONE}: retrain it")  # fmt: skip
        encoder = build_encoder(info.height, info.width, default_weights_path(backbone_weights))
        decoder = build_decoder(info.height, info.width, encoder_channels(encoder))
        load_checked_weights(decoder, model_dir / WEIGHTS_FILE, info.weights_sha256, INFO_FILE)
        return cls(info, encoder, decoder, runtime, metrics)

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """(H, W, 3) class probabilities for a photo of any size."""
        height, width = pixels.shape[:2]
        box = Letterbox.fit(height, width, self.info.height, self.info.width)
        placed = box.apply(pixels, self.info.height, self.info.width)
        # The photo and its mirror image in one batch, their answers averaged (mirroring was the training
        # augmentation, so the model should agree with itself; where it does not, averaging hedges).
        batch = preprocess(np.stack([placed, placed[:, ::-1]]))
        with self._lock, self._forward_seconds.time():
            logits = self._forward(image=batch)["logits"]
        probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probs /= probs.sum(axis=-1, keepdims=True)
        probs = (probs[0] + probs[1][:, ::-1]) / 2
        full = [
            np.asarray(Image.fromarray(probs[..., c].astype(np.float32)).resize(
                (self.info.width, self.info.height), Image.BILINEAR))
            for c in range(len(CLASSES))
        ]  # fmt: skip
        return np.stack([box.undo(plane, height, width) for plane in full], axis=-1)

    def segment(self, pixels: np.ndarray, opening: int | None = None) -> dict[Group, np.ndarray]:
        """A mask per garment group found: argmax (else the fallback probability), opening, largest connected
        component, minimum area."""
        probabilities = self.probabilities(pixels)
        labels = np.argmax(probabilities, axis=-1)
        if opening is None:
            opening = max(1, round(min(pixels.shape[:2]) / 100))
        found = {}
        smallest = MIN_AREA_FRACTION * labels.size
        for index, group in ((1, Group.TOP), (2, Group.BOTTOM)):
            mask = largest_component(labels == index, opening)
            if mask.sum() < smallest:
                mask = largest_component(probabilities[..., index] >= FALLBACK_PROBABILITY, opening)
            if mask.sum() >= smallest:
                found[group] = mask
        return found

    def regions(self, pixels: np.ndarray) -> list[Region]:
        """The garments of an unannotated photo as regions (top first), or none."""
        return [Region(group=group, mask=mask) for group, mask in self.segment(pixels).items()]
