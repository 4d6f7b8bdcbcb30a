"""`kloset bench search` against a real temporary `kloset serve`: the figures' shape, not their values."""

import json
import subprocess
import sys
from pathlib import Path

KLOSET = str(Path(sys.executable).parent / "kloset")


def test_bench_search_measures_each_concurrency_by_item_and_by_photo(tmp_path, sample_catalog, tiny_model_dir,
                                                                     tiny_segmenter_dir):  # fmt: skip
    env = {"PATH": "/usr/bin:/bin", "KLOSET_MODEL_DIR": str(tiny_model_dir),
           "KLOSET_SEGMENTER_DIR": str(tiny_segmenter_dir)}  # fmt: skip
    result = subprocess.run(
        [KLOSET, "bench", "search", "--catalog", "600", "--data", str(sample_catalog), "--item-requests", "16",
         "--photo-requests", "16", "--mixed-seconds", "3", "--quiet", "--json", "--docs", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    assert figures["catalog"] == 600 and figures["real_garments"] + figures["synthetic_garments"] == 600
    for kind in ("by_item", "by_photo"):
        assert set(figures[kind]) == {"1", "4", "16"}
        for f in figures[kind].values():
            assert f["errors"] == 0 and f["requests"] >= 15 and f["p50_ms"] <= f["p99_ms"]
    assert all("inference_ms_p50" in f and "search_ms_p50" in f for f in figures["by_photo"].values())
    assert figures["serve_rss_mb"] > 0
    mixed = figures["mixed"]
    assert mixed["seconds"] == 3 and mixed["by_photo"]["clients"] == 8 and mixed["by_item"]["clients"] == 8
    assert all(mixed[k]["requests"] > 0 and mixed[k]["errors"] == 0 for k in ("by_photo", "by_item"))
    # the original reaches only as far as the real garments go
    assert list(figures["original_hsv"]) == [str(figures["real_garments"])]
    assert "<!-- bench:search -->" in (tmp_path / "benchmarks.md").read_text()
    assert (tmp_path / "benchmarks" / "search.png").stat().st_size > 10_000


def test_bench_search_refuses_a_folder_that_is_not_k_fashion(tmp_path):
    result = subprocess.run([KLOSET, "bench", "search", "--data", str(tmp_path)], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin"}, timeout=120)  # fmt: skip
    assert result.returncode == 1 and "not a K-Fashion folder" in result.stderr
