"""How a Keras network is run: as a TensorFlow graph, or converted to TensorFlow Lite (XNNPACK kernels).

The choice is the same for the attribute model and the segmenter (KLOSET_MODEL_RUNTIME). Both runtimes give a
`Forward`: named float32 arrays in, named arrays out, for any batch size. TensorFlow's own thread pools are sized
here too, once, before the first op runs.

Measured with `kloset bench model` on 2 cores (docs/benchmarks.md): the TensorFlow wheel is not built for the
CPU's AVX2/FMA, XNNPACK uses them, and Lite0 ran about 2.7x faster as float32 TFLite with the same embeddings
(cosine 1.000). Dynamic-range int8 was slower than float32 there and moved embeddings to cosine 0.98, so it is
not offered.
"""

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # keras takes seconds to import; configuration reads this module without running a model
    import keras

log = logging.getLogger(__name__)

# Named inputs -> named outputs, numpy in and out.
Forward = Callable[..., dict[str, np.ndarray]]


class ModelRuntime(StrEnum):
    TFLITE = "tflite"  # converted once (cached by content), run by the TFLite interpreter with XNNPACK
    TF_GRAPH = "tf_graph"  # traced once into a TensorFlow graph


@dataclass(frozen=True)
class RunOptions:
    """How a network runs (KLOSET_MODEL_RUNTIME, KLOSET_TF_INTRA_OP_THREADS, KLOSET_MODEL_CACHE_DIR)."""

    runtime: ModelRuntime = ModelRuntime.TFLITE
    threads: int = 0  # interpreter threads under TFLite; 0: every core
    cache_dir: Path | None = None  # where converted models are kept between runs; None: this process only


def thread_counts(intra_op: int, inter_op: int) -> tuple[int, int]:
    """(intra, inter) with 0 resolved for this machine: every core for one op, two ops side by side."""
    cores = os.cpu_count() or 1
    return (intra_op or cores, inter_op or min(2, cores))


def configure_threads(intra_op: int = 0, inter_op: int = 0) -> tuple[int, int]:
    """Apply the thread counts (0 = chosen for the machine); a second call with other counts only warns."""
    import tensorflow as tf

    intra, inter = thread_counts(intra_op, inter_op)
    threading = tf.config.threading
    if (threading.get_intra_op_parallelism_threads(), threading.get_inter_op_parallelism_threads()) == (intra, inter):
        return intra, inter
    try:
        threading.set_intra_op_parallelism_threads(intra)
        threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:  # TensorFlow already ran an op in this process: its pools are fixed
        log.warning(
            "TensorFlow's thread pools are already running (intra %d, inter %d); %d / %d not applied",
            threading.get_intra_op_parallelism_threads(),
            threading.get_inter_op_parallelism_threads(),
            intra,
            inter,
        )
    return intra, inter


def forward_of(network: "keras.Model", options: RunOptions) -> Forward:
    """The network (named inputs, a dict of outputs) on the chosen runtime."""
    if options.runtime is ModelRuntime.TFLITE:
        from kloset.core.models.lite import LiteForward, flatbuffer_of

        return LiteForward(flatbuffer_of(network, options.cache_dir), thread_counts(options.threads, 0)[0])
    return graph_forward(network)


def graph_forward(network: "keras.Model") -> Forward:
    """The network as one TensorFlow graph for any batch size: traced once, then run without Python per layer.

    Measured at 224 px on 2 cores: eager Keras calls ran the backbone at 7 images/s at batch 1 and 69 at
    batch 32; the graph at 78 and 146.
    """
    import tensorflow as tf

    names = [tensor.name.split(":")[0] for tensor in network.inputs]
    signature = [tf.TensorSpec(tensor.shape, tf.float32, name=name) for tensor, name in zip(network.inputs, names,
                                                                                          strict=True)]  # fmt: skip
    single = len(names) == 1  # a one-input network takes its tensor, not a list of one
    graph = tf.function(lambda *inputs: network(inputs[0] if single else list(inputs), training=False),
                        input_signature=signature)  # fmt: skip

    def forward(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        return {name: np.asarray(value) for name, value in graph(*(inputs[n] for n in names)).items()}

    return forward
