"""A Keras network converted to TensorFlow Lite and run by its interpreter (XNNPACK kernels, in the TF wheel).

Nothing is downloaded and nothing derived is committed: the flatbuffer is made from the loaded network itself
(SavedModel export, then TFLiteConverter; converting a tf.function directly dropped the weights), about ten
seconds for Lite0, and kept under the cache folder by a digest of the network's layout, its weights and the
TensorFlow version, so a restart reads it back and new weights can never meet an old conversion.
"""

import hashlib
import logging
import os
import tempfile
import threading
import warnings
from pathlib import Path

import keras
import numpy as np

from kloset.core.errors import ModelError

log = logging.getLogger(__name__)

_converted: dict[str, bytes] = {}  # digest -> flatbuffer, for networks loaded again in this process
_converted_lock = threading.Lock()


def network_digest(network: keras.Model) -> str:
    """What the conversion depends on: layout (input shapes included), every weight, and TensorFlow's version."""
    import tensorflow as tf

    digest = hashlib.sha256(tf.__version__.encode())
    digest.update(network.to_json().encode())
    for weight in network.weights:
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    return digest.hexdigest()


def flatbuffer_of(network: keras.Model, cache_dir: Path | None = None) -> bytes:
    """The network as a TFLite flatbuffer: from this process's memory, else cache_dir, else converted now."""
    digest = network_digest(network)
    path = cache_dir / f"{network.name}-{digest[:16]}.tflite" if cache_dir else None
    with _converted_lock:  # two roles loading the same model convert it once
        flatbuffer = _converted.get(digest)
        if flatbuffer is None and path is not None and path.is_file():
            flatbuffer = path.read_bytes()
        if flatbuffer is None:
            flatbuffer = convert(network)
        if path is not None and not path.is_file():
            _write_atomically(path, flatbuffer)
        _converted[digest] = flatbuffer
        return flatbuffer


def convert(network: keras.Model, dynamic_range_int8: bool = False) -> bytes:
    """SavedModel export, then conversion: float32, or int8 weights (`kloset bench model` measures it; runtime
    says why it is not offered)."""
    import tensorflow as tf

    log.info("converting %s to TensorFlow Lite", network.name)
    with tempfile.TemporaryDirectory(prefix="kloset-lite-") as exported:
        try:
            network.export(exported, format="tf_saved_model", verbose=False)
            converter = tf.lite.TFLiteConverter.from_saved_model(exported)
            if dynamic_range_int8:
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
            return converter.convert()
        except Exception as exc:  # the converter raises several unrelated types; all mean the same to a user
            raise ModelError(f"{network.name} could not be converted to TensorFlow Lite ({exc}); "
                             "KLOSET_MODEL_RUNTIME=tf_graph runs it without conversion") from None  # fmt: skip


def _write_atomically(path: Path, data: bytes) -> None:
    """A reader never sees half a file: written beside, then renamed; a cache that cannot be written only warns."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=path.name, suffix=".part", delete=False) as f:
            f.write(data)
        os.chmod(f.name, 0o644)  # readable by other users, as a plainly written file is (the image's cache)
        os.replace(f.name, path)
    except OSError as exc:
        log.warning("could not keep the converted model in %s: %s", path.parent, exc)


class LiteForward:
    """One interpreter behind a lock (an interpreter is not thread-safe): named arrays in, named arrays out."""

    def __init__(self, flatbuffer: bytes, threads: int) -> None:
        import tensorflow as tf

        with warnings.catch_warnings():
            # tf.lite.Interpreter's notice that LiteRT (ai-edge-litert, another download) will replace it.
            warnings.simplefilter("ignore", UserWarning)
            self._interpreter = tf.lite.Interpreter(model_content=flatbuffer, num_threads=threads)
        self._runner = self._interpreter.get_signature_runner()
        self._lock = threading.Lock()
        self.threads = threads

    def __call__(self, **inputs: np.ndarray) -> dict[str, np.ndarray]:
        with self._lock:
            # The runner resizes its tensors to each batch; outputs are copied before the next call reuses them.
            return {name: np.array(value) for name, value in self._runner(**inputs).items()}
