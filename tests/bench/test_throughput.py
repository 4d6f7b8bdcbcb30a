"""`kloset bench model` and `kloset bench ingest`: the figures' shape and the documents they write, not values."""

import json
import subprocess
import sys
from pathlib import Path

KLOSET = str(Path(sys.executable).parent / "kloset")


def bench(args: list[str], tmp_path: Path, tiny_model_dir: Path, segmenter_dir: Path | None = None) -> dict:
    env = {"PATH": "/usr/bin:/bin", "KLOSET_MODEL_DIR": str(tiny_model_dir)}
    if segmenter_dir is not None:
        env["KLOSET_SEGMENTER_DIR"] = str(segmenter_dir)
    result = subprocess.run([KLOSET, "bench", *args, "--quiet", "--json", "--docs", str(tmp_path)], env=env,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def test_bench_model_measures_each_runtime_and_batch_size_at_the_configured_input_size(
    tmp_path, tiny_model_dir, tiny_segmenter_dir
):
    figures = bench(["model", "--batches", "1,4", "--seconds", "0.05"], tmp_path, tiny_model_dir, tiny_segmenter_dir)
    assert figures["image_size"] == 32 and set(figures["batches"]) == {"1", "4"}
    runtimes = figures["runtimes"]
    assert set(runtimes) == {"tf_graph", "tflite", "tflite_int8"}
    for runtime in runtimes.values():
        assert all(f["images_per_s"] > 0 and f["passes"] >= 2 for f in runtime["batches"].values())
        assert runtime["ceiling_images_per_s"] == max(f["images_per_s"] for f in runtime["batches"].values())
    assert runtimes["tf_graph"]["embedding_cosine"] == 1.0 and runtimes["tflite"]["embedding_cosine"] > 0.999
    # The ceiling is the fastest runtime kloset offers; the configuration's runtime is named beside it.
    offered = {n: r["ceiling_images_per_s"] for n, r in runtimes.items() if r["offered"]}
    assert figures["fastest_runtime"] == max(offered, key=offered.get) and figures["runtime"] == "tflite"
    assert figures["ceiling_images_per_s"] == offered[figures["fastest_runtime"]]
    assert figures["batches"] == runtimes[figures["fastest_runtime"]]["batches"]
    segmenter = figures["segmenter"]
    assert segmenter["input"] == "96x64" and set(segmenter["runtimes"]) == {"tf_graph", "tflite"}
    assert all(f["ms_per_photo"] > 0 for f in segmenter["runtimes"].values())
    assert figures["views_per_garment"] == 1  # KLOSET_MIRROR_VIEW is off by default
    assert figures["ceiling_garments_per_s"] == figures["ceiling_images_per_s"]
    assert "<!-- bench:model -->" in (tmp_path / "benchmarks.md").read_text()
    assert (tmp_path / "benchmarks" / "model.png").stat().st_size > 10_000


def test_bench_ingest_indexes_a_folder_end_to_end_and_compares_with_the_ceiling(
    tmp_path, sample_catalog, tiny_model_dir, tiny_segmenter_dir
):
    figures = bench(["ingest", "--data", str(sample_catalog), "--limit", "12"], tmp_path, tiny_model_dir,
                    tiny_segmenter_dir)  # fmt: skip
    assert figures["photos"] == 12 and figures["jobs_failed"] == 0 and figures["submit_errors"] == 0
    assert figures["jobs_done"] + figures["jobs_skipped"] == 12 and figures["garments"] >= figures["jobs_done"]
    assert figures["garments_per_s"] > 0 and figures["ceiling_garments_per_s"] > 0
    ratio = figures["garments_per_s"] / figures["ceiling_garments_per_s"]
    assert abs(figures["ratio_to_ceiling"] - ratio) < 0.01
    graph = figures["tf_graph_ceiling_garments_per_s"]
    assert graph > 0 and abs(figures["ratio_to_tf_graph_ceiling"] - figures["garments_per_s"] / graph) < 0.01
    assert figures["runtime"] == "tflite"
    assert figures["timeline"][-1][1] == figures["garments"]
    # Waited on as `kloset ingest --wait` waits (GetJobs), and the server's own timers say where the time went.
    assert figures["status_calls"] >= 1 and figures["status_calls_per_job"] < 3
    stages = figures["time_breakdown"]
    assert set(stages) == {"queue", "decode_and_crop", "model", "store", "batching_and_other", "ack"}
    assert stages["decode_and_crop"]["count"] == stages["queue"]["count"] == figures["jobs_done"]
    assert all(set(stage) == {"seconds", "count", "mean_ms", "ms_per_garment"} for stage in stages.values())
    assert stages["model"]["count"] >= 1 and stages["store"]["count"] >= 1 and stages["model"]["seconds"] > 0
    assert "<!-- bench:ingest -->" in (tmp_path / "benchmarks.md").read_text()
    assert "ms per garment" in (tmp_path / "benchmarks.md").read_text()
    assert (tmp_path / "benchmarks" / "ingest.png").stat().st_size > 10_000


def test_bench_ingest_refuses_a_folder_that_is_not_k_fashion(tmp_path):
    result = subprocess.run([KLOSET, "bench", "ingest", "--data", str(tmp_path)], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin"}, timeout=120)  # fmt: skip
    assert result.returncode == 1 and "not a K-Fashion folder" in result.stderr
