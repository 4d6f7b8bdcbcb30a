"""`kloset bench model`: the backbone's images/s at the configured input size, the ceiling ingest is measured
against (docs/benchmarks.md, section "model")."""

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kloset.bench.document import markdown_table, stamp
from kloset.core.config import Settings

DEFAULT_BATCHES = (1, 8, 32)
DEFAULT_INPUT_SIZE = 224  # when no attribute model is configured


def configured_input_size(settings: Settings) -> int:
    """The input size of the configured attribute model (model.json), which is what ingest runs."""
    from kloset.core.errors import ModelError
    from kloset.core.models.attributes import read_info

    try:
        return read_info(settings.model_dir).input_size
    except ModelError:
        return DEFAULT_INPUT_SIZE


def measure_backbone(settings: Settings, batches: Sequence[int] = DEFAULT_BATCHES, seconds: float = 5.0) -> dict:
    """Images/s of the backbone alone on random input, per batch size, after a warm-up pass at each size."""
    import tensorflow as tf

    from kloset.core.models.attributes import VIEWS_PER_GARMENT
    from kloset.core.models.backbone import build_backbone, default_weights_path, preprocess
    from kloset.core.models.runtime import configure_threads

    intra, inter = configure_threads(settings.tf_intra_op_threads, settings.tf_inter_op_threads)
    size = configured_input_size(settings)
    backbone = build_backbone(size, default_weights_path(settings.backbone_weights))
    # As the attribute model runs it (attributes.compiled_forward): one graph, no Python per layer.
    forward = tf.function(lambda images: backbone(images, training=False)["features"],
                          input_signature=[tf.TensorSpec((None, size, size, 3), tf.float32)])  # fmt: skip
    rng = np.random.default_rng(0)
    figures = {}
    for batch in batches:
        images = preprocess(rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8))
        forward(images)  # warm-up: tracing, and memory for this shape
        passes, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds or passes < 2:
            np.asarray(forward(images))
            passes += 1
        figures[str(batch)] = {
            "images_per_s": round(passes * batch / elapsed, 2),
            "ms_per_batch": round(elapsed / passes * 1000, 2),
            "passes": passes,
        }
    best = max(figures, key=lambda b: figures[b]["images_per_s"])
    ceiling = figures[best]["images_per_s"]
    return {
        "image_size": size,
        "batches": figures,
        "best_batch": int(best),
        "ceiling_images_per_s": ceiling,
        "views_per_garment": VIEWS_PER_GARMENT,
        "ceiling_garments_per_s": round(ceiling / VIEWS_PER_GARMENT, 2),
        "tf_threads": {"intra_op": intra, "inter_op": inter},
        "seconds_per_batch_size": seconds,
    }


def model_markdown(figures: dict) -> str:
    """The "model" section of docs/benchmarks.md."""
    rows = [[int(b), f["images_per_s"], f["ms_per_batch"], f["passes"]] for b, f in figures["batches"].items()]
    threads = figures["tf_threads"]
    lines = [
        "## Model: the backbone's ceiling (`kloset bench model`)",
        "",
        f"{stamp()}. EfficientNet-Lite0 at {figures['image_size']} px on random input, TensorFlow threads "
        f"{threads['intra_op']} intra-op / {threads['inter_op']} inter-op, {figures['seconds_per_batch_size']:g} s "
        "per batch size after a warm-up pass.",
        "",
        markdown_table(["batch", "images/s", "ms per batch", "passes"], rows),
        "",
        f"Ceiling: **{figures['ceiling_images_per_s']:.1f} images/s** (batch {figures['best_batch']}); with "
        f"{figures['views_per_garment']} views per garment (the crop and its mirror image) that is "
        f"**{figures['ceiling_garments_per_s']:.1f} garments/s**, what `kloset bench ingest` compares against.",
        "",
        "![backbone images/s by batch size](benchmarks/model.png)",
    ]
    return "\n".join(lines)


def save_model_plot(figures: dict, path: Path) -> Path:
    """Images/s by batch size, with the ceiling in garments/s written beside it."""
    from kloset.bench.document import pyplot, save_figure

    plt = pyplot()

    batches = list(figures["batches"])
    speeds = [figures["batches"][b]["images_per_s"] for b in batches]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    bars = ax.bar([f"batch {b}" for b in batches], speeds, color="tab:blue")
    ax.bar_label(bars, labels=[f"{v:.1f} images/s" for v in speeds], fontsize=9, padding=2)
    ax.axhline(figures["ceiling_images_per_s"], linestyle="--", color="gray", linewidth=1)
    ax.text(0.02, 0.96, f"ceiling {figures['ceiling_images_per_s']:.1f} images/s = "
            f"{figures['ceiling_garments_per_s']:.1f} garments/s ({figures['views_per_garment']} views each)",
            transform=ax.transAxes, fontsize=9, color="dimgray", va="top")  # fmt: skip
    ax.set_ylim(0, max(speeds) * 1.3)
    ax.set_ylabel("images per second")
    ax.set_title(f"kloset bench model: EfficientNet-Lite0 at {figures['image_size']} px")
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)
