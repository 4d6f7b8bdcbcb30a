"""TensorFlow's thread pools, sized for the machine once, before the first op runs."""

import logging
import os

log = logging.getLogger(__name__)


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
