"""`kloset bench model`: the backbone's images/s on each runtime at the configured input size, side by side; the
fastest is the ceiling ingest is measured against (docs/benchmarks.md, section "model")."""

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from kloset.bench.document import markdown_table, stamp
from kloset.core.config import Settings

DEFAULT_BATCHES = (1, 8, 32)
DEFAULT_INPUT_SIZE = 224  # when no attribute model is configured
# Measured beside the runtimes kloset offers: TFLite with int8 weights (dynamic range), to show why it is not one.
INT8 = "tflite_int8"
MIN_COSINE = 0.99  # a runtime whose embeddings drift further from the TensorFlow graph's would need a reindex


def configured_input_size(settings: Settings) -> int:
    """The input size of the configured attribute model (model.json), which is what ingest runs."""
    from kloset.core.errors import ModelError
    from kloset.core.models.attributes import read_info

    try:
        return read_info(settings.model_dir).input_size
    except ModelError:
        return DEFAULT_INPUT_SIZE


def measure_backbone(settings: Settings, batches: Sequence[int] = DEFAULT_BATCHES, seconds: float = 5.0) -> dict:
    """Images/s of the backbone alone on random input, per runtime and batch size, after a warm-up pass at each.

    The top-level figures (batches, ceiling) are the fastest runtime's whose embeddings stay within MIN_COSINE of
    the TensorFlow graph's; `runtime` names the one the configuration runs.
    """
    from kloset.core.models.backbone import build_backbone, default_weights_path, preprocess
    from kloset.core.models.runtime import configure_threads

    intra, inter = configure_threads(settings.tf_intra_op_threads, settings.tf_inter_op_threads)
    size = configured_input_size(settings)
    backbone = build_backbone(size, default_weights_path(settings.backbone_weights))
    rng = np.random.default_rng(0)
    sample = preprocess(rng.integers(0, 256, (8, size, size, 3), dtype=np.uint8))
    forwards = _forwards(backbone, intra)
    reference = forwards["tf_graph"](image=sample)["features"]
    runtimes = {}
    for name, forward in forwards.items():
        runtimes[name] = _measure(forward, size, batches, seconds, rng)
        runtimes[name]["embedding_cosine"] = _mean_cosine(forward(image=sample)["features"], reference)
        runtimes[name]["offered"] = name != INT8
    eligible = {n: r for n, r in runtimes.items() if r["offered"] and r["embedding_cosine"] >= MIN_COSINE}
    fastest = max(eligible, key=lambda n: eligible[n]["ceiling_images_per_s"])
    best = runtimes[fastest]
    views = 2 if settings.mirror_view else 1
    return {
        "image_size": size,
        "runtime": settings.model_runtime.value,
        "fastest_runtime": fastest,
        "batches": best["batches"],
        "best_batch": best["best_batch"],
        "ceiling_images_per_s": best["ceiling_images_per_s"],
        "views_per_garment": views,
        "ceiling_garments_per_s": round(best["ceiling_images_per_s"] / views, 2),
        "runtimes": runtimes,
        "tf_threads": {"intra_op": intra, "inter_op": inter},
        "seconds_per_batch_size": seconds,
    }


def measure_segmenter(settings: Settings, seconds: float = 5.0) -> dict | None:
    """ms per street photo (the photo and its mirror, one batch) of the segmenter network on each offered runtime,
    at its configured input size; None when no segmenter is configured."""
    from kloset.core.errors import ModelError
    from kloset.core.models.backbone import preprocess
    from kloset.core.models.lite import LiteForward, convert
    from kloset.core.models.runtime import ModelRuntime, RunOptions, graph_forward, thread_counts
    from kloset.core.models.segmenter import Segmenter

    try:
        segmenter = Segmenter.load(settings.segmenter_dir, settings.backbone_weights, RunOptions(ModelRuntime.TF_GRAPH))
    except ModelError:
        return None
    network = segmenter.network()
    threads = thread_counts(settings.tf_intra_op_threads, settings.tf_inter_op_threads)[0]
    forwards = {"tf_graph": graph_forward(network), "tflite": LiteForward(convert(network), threads)}
    height, width = segmenter.info.height, segmenter.info.width
    photo = preprocess(np.random.default_rng(0).integers(0, 256, (2, height, width, 3), dtype=np.uint8))
    figures = {}
    for name, forward in forwards.items():
        passes, elapsed = _timed(forward, photo, seconds)
        figures[name] = {"ms_per_photo": round(elapsed / passes * 1000, 2), "passes": passes}
    return {"input": f"{height}x{width}", "runtimes": figures}


def _forwards(backbone, threads: int) -> dict[str, Callable]:
    """The backbone on each runtime, converted in this process (nothing read from a cache)."""
    from kloset.core.models.lite import LiteForward, convert
    from kloset.core.models.runtime import graph_forward

    return {
        "tf_graph": graph_forward(backbone),
        "tflite": LiteForward(convert(backbone), threads),
        INT8: LiteForward(convert(backbone, dynamic_range_int8=True), threads),
    }


def _measure(forward: Callable, size: int, batches: Sequence[int], seconds: float, rng) -> dict:
    from kloset.core.models.backbone import preprocess

    figures = {}
    for batch in batches:
        images = preprocess(rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8))
        passes, elapsed = _timed(forward, images, seconds)
        figures[str(batch)] = {
            "images_per_s": round(passes * batch / elapsed, 2),
            "ms_per_batch": round(elapsed / passes * 1000, 2),
            "passes": passes,
        }
    best = max(figures, key=lambda b: figures[b]["images_per_s"])
    return {"batches": figures, "best_batch": int(best), "ceiling_images_per_s": figures[best]["images_per_s"]}


def _timed(forward: Callable, images: np.ndarray, seconds: float) -> tuple[int, float]:
    """(passes, seconds) of forward on images for at least `seconds` and two passes, after a warm-up pass
    (tracing or tensor allocation, and memory for this shape)."""
    forward(image=images)
    passes, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or passes < 2:
        forward(image=images)
        passes += 1
    return passes, elapsed


def _mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    cosine = (a * b).sum(axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return round(float(cosine.mean()), 4)


def model_markdown(figures: dict) -> str:
    """The "model" section of docs/benchmarks.md."""
    rows = [
        [name, int(b), f["images_per_s"], f["ms_per_batch"], f["passes"], r["embedding_cosine"],
         "yes" if r["offered"] else "no"]
        for name, r in figures["runtimes"].items()
        for b, f in r["batches"].items()
    ]  # fmt: skip
    threads = figures["tf_threads"]
    graph = figures["runtimes"]["tf_graph"]["ceiling_images_per_s"]
    lines = [
        "## Model: the backbone's ceiling on each runtime (`kloset bench model`)",
        "",
        f"{stamp()}. EfficientNet-Lite0 at {figures['image_size']} px on random input, {threads['intra_op']} "
        f"threads, {figures['seconds_per_batch_size']:g} s per runtime and batch size after a warm-up pass. "
        "Cosine: the mean cosine of the runtime's embeddings to the TensorFlow graph's on the same images; "
        f"a runtime is offered (KLOSET_MODEL_RUNTIME) when it stays at {MIN_COSINE} or above and runs faster.",
        "",
        markdown_table(["runtime", "batch", "images/s", "ms per batch", "passes", "cosine", "offered"], rows),
        "",
        f"Fastest: **{figures['fastest_runtime']}**, {figures['ceiling_images_per_s']:.1f} images/s (batch "
        f"{figures['best_batch']}), {figures['ceiling_images_per_s'] / graph:.2f}x the TensorFlow graph's "
        f"{graph:.1f}. The configuration runs **{figures['runtime']}**. With {figures['views_per_garment']} "
        f"view(s) per garment the ceiling is **{figures['ceiling_garments_per_s']:.1f} garments/s**, what "
        "`kloset bench ingest` compares against.",
        "",
        "![backbone images/s by runtime and batch size](benchmarks/model.png)",
    ]
    if figures.get("segmenter"):
        seg = figures["segmenter"]
        rows = [[name, f["ms_per_photo"], f["passes"]] for name, f in seg["runtimes"].items()]
        lines += ["", f"The segmenter at {seg['input']} (a street photo and its mirror image in one batch):", "",
                  markdown_table(["runtime", "ms per photo", "passes"], rows)]  # fmt: skip
    return "\n".join(lines)


def save_model_plot(figures: dict, path: Path) -> Path:
    """Images/s by batch size, one group of bars per runtime, with the ceiling in garments/s written beside it."""
    from kloset.bench.document import pyplot, save_figure

    plt = pyplot()
    runtimes = figures["runtimes"]
    batches = list(figures["batches"])
    fig, ax = plt.subplots(figsize=(8, 4.8))
    width = 0.8 / len(runtimes)
    for i, (name, r) in enumerate(runtimes.items()):
        speeds = [r["batches"][b]["images_per_s"] for b in batches]
        xs = [j + (i - (len(runtimes) - 1) / 2) * width for j in range(len(batches))]
        bars = ax.bar(xs, speeds, width, label=f"{name} (cosine {r['embedding_cosine']:.3f})")
        ax.bar_label(bars, labels=[f"{v:.0f}" for v in speeds], fontsize=8, padding=2)
    ax.set_xticks(range(len(batches)), [f"batch {b}" for b in batches])
    ax.axhline(figures["ceiling_images_per_s"], linestyle="--", color="gray", linewidth=1)
    ax.text(0.02, 0.96, f"ceiling ({figures['fastest_runtime']}) {figures['ceiling_images_per_s']:.1f} images/s = "
            f"{figures['ceiling_garments_per_s']:.1f} garments/s ({figures['views_per_garment']} view(s) each)",
            transform=ax.transAxes, fontsize=9, color="dimgray", va="top")  # fmt: skip
    top = max(r["ceiling_images_per_s"] for r in runtimes.values())
    ax.set_ylim(0, top * 1.3)
    ax.set_ylabel("images per second")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(f"kloset bench model: EfficientNet-Lite0 at {figures['image_size']} px, by runtime")
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)
