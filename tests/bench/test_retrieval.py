"""`kloset bench retrieval` end to end on the synthetic catalog, with the tiny trained models: counts and keys."""

import json
import os
import subprocess
import sys
from pathlib import Path

from kloset.bench.retrieval import Figures, Truth, load_catalog
from kloset.core.garments.labels import Group

KLOSET = str(Path(sys.executable).with_name("kloset"))
METRICS = {"recall_at_1", "recall_at_10", "map", "category_precision_at_10", "color_precision_at_10", "ms_per_query"}


def test_figures_score_ranks_and_precision():
    truth = Truth("a/top", Group.TOP, "blouse", "white")
    labels = {"a/top": truth, "b/top": Truth("b/top", Group.TOP, "blouse", "black")}
    figures = Figures()
    figures.add(truth, ["b/top", "a/top"], labels, 0.002)  # found second: rank 2
    figures.miss()
    summary = figures.summary()
    assert summary["recall_at_1"] == 0 and summary["recall_at_10"] == 0.5 and summary["map"] == 0.25
    assert summary["category_precision_at_10"] == 0.1  # 2 of 10 in the first query, 0 in the missed one
    assert summary["color_precision_at_10"] == 0.05


def test_the_benchmark_counts_every_top_and_bottom_of_the_folder(sample_catalog, tiny_model_dir, tiny_segmenter_dir,
                                                                 tmp_path):  # fmt: skip
    catalog = load_catalog(sample_catalog)
    garments = sum(len(g) for _, _, g in catalog.photos)
    env = {**os.environ, "KLOSET_MODEL_DIR": str(tiny_model_dir), "KLOSET_SEGMENTER_DIR": str(tiny_segmenter_dir),
           "KLOSET_DATA_DIR": str(tmp_path / "var")}  # fmt: skip
    plot = tmp_path / "retrieval.png"
    out = subprocess.run(
        [KLOSET, "bench", "retrieval", "--data", str(sample_catalog), "--json", "--plot", str(plot),
         "--table", str(tmp_path / "retrieval.md")],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout)
    assert figures["n_catalog"] == garments == len(catalog.labels)
    assert 0 < figures["n_queries"] <= garments
    assert set(figures["region"]) == set(figures["photo"]) == {"strict", "soft", "none"}
    assert set(figures["by_vector"]) == {"visual", "color", "fused"}
    assert set(figures["baseline"]) == {"labelled_filter", "group_only"}
    for table in (figures["region"], figures["photo"], figures["by_vector"]):
        for metrics in table.values():
            assert set(metrics) == METRICS and all(0 <= metrics[k] <= 1 for k in METRICS - {"ms_per_query"})
    for metrics in figures["baseline"].values():
        assert set(metrics) == METRICS - {"category_precision_at_10", "color_precision_at_10"}
    # The embedding sees the very garment in a new view of its photo even at 32 px.
    assert figures["region"]["none"]["recall_at_10"] >= 0.5
    assert plot.read_bytes()[:4] == b"\x89PNG" and "| polygon, soft |" in (tmp_path / "retrieval.md").read_text()
    assert not (tmp_path / "var").exists()  # the user's catalog and data folder are never touched


def test_the_benchmark_refuses_a_folder_without_labels(tmp_path):
    out = subprocess.run([KLOSET, "bench", "retrieval", "--data", str(tmp_path)], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert out.returncode == 1 and "not a K-Fashion folder" in out.stderr
