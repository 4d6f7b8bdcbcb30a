"""`kloset bench retrieval` end to end with the tiny trained models: the figures on a folder whose answer is known
beforehand, then counts and keys on the synthetic catalog."""

import colorsys
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from kloset.bench.retrieval import Figures, Truth, load_catalog
from kloset.core.garments.kfashion import label_document
from kloset.core.garments.labels import CATEGORY_GROUP, COLORS, Group, korean_category, korean_color

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


PHOTOS = 6
TOP_BOX, BOTTOM_BOX = (60, 40, 180, 140), (60, 150, 180, 300)  # x0, y0, x1, y1 in a 240 x 320 photo


def write_known_answer_folder(root: Path) -> dict[str, str]:
    """PHOTOS photos of a top and a bottom, every garment a solid color of its own hue (12 hues 30 degrees apart)
    and its own label color: a garment's nearest neighbour by color, and by the original's HSV histogram, is
    its own photo's copy whatever the view does (a crop, a mirror, brightness and contrast keep the hue). Returns
    each garment id's label color."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    tops = [c for c, g in CATEGORY_GROUP.items() if g is Group.TOP]
    bottoms = [c for c, g in CATEGORY_GROUP.items() if g is Group.BOTTOM]
    colors = {}
    for i in range(PHOTOS):
        stem = f"{i + 1:04d}"
        image = Image.new("RGB", (240, 320), (128, 128, 128))
        draw = ImageDraw.Draw(image)
        garments = {}
        for group, box, categories, k in (("상의", TOP_BOX, tops, 2 * i), ("하의", BOTTOM_BOX, bottoms, 2 * i + 1)):
            rgb = colorsys.hsv_to_rgb(k / (2 * PHOTOS), 0.85, 0.75)
            draw.rectangle(box, fill=tuple(int(255 * c) for c in rgb))
            x0, y0, x1, y1 = box
            polygon = np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], dtype=np.float64)
            garments[group] = ([polygon], korean_category(categories[i % len(categories)]), korean_color(COLORS[k]))
            colors[f"{stem}/{'top' if group == '상의' else 'bottom'}"] = COLORS[k]
        image.save(root / "images" / f"{stem}.jpg", quality=95)
        document = label_document(f"{stem}.jpg", 240, 320, garments, image_number=i + 1)
        (root / "labels" / f"{stem}.json").write_text(json.dumps(document, ensure_ascii=False))
    return colors


def test_the_benchmark_finds_each_garment_s_own_copy_where_the_answer_is_known(tiny_model_dir, tiny_segmenter_dir,
                                                                                tmp_path):  # fmt: skip
    """The figures themselves, not only their keys: 12 garments, each queried once in a new view of its photo.
    By color alone with no filter (KLOSET_FILTER_POLICY=none), and by the original's histograms, the first answer
    is always the garment's own copy: recall@1 and mAP are exactly 1. A benchmark that scored against the wrong
    truth, lost queries or mixed up garments of one photo would give less."""
    colors = write_known_answer_folder(tmp_path / "known")
    assert len(load_catalog(tmp_path / "known").labels) == len(colors) == 2 * PHOTOS
    env = {**os.environ, "KLOSET_MODEL_DIR": str(tiny_model_dir), "KLOSET_SEGMENTER_DIR": str(tiny_segmenter_dir),
           "KLOSET_DATA_DIR": str(tmp_path / "var"), "KLOSET_FILTER_POLICY": "none"}  # fmt: skip
    out = subprocess.run([KLOSET, "bench", "retrieval", "--data", str(tmp_path / "known"), "--json"],
                         env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout)
    assert figures["n_catalog"] == figures["n_queries"] == 2 * PHOTOS
    assert figures["details"]["by_vector_policy"] == "none"
    by_color = figures["by_vector"]["color"]
    assert by_color["recall_at_1"] == by_color["recall_at_10"] == by_color["map"] == 1.0
    for method in ("labelled_filter", "group_only"):  # within its own label's folder, and within its whole group
        assert figures["baseline"][method]["recall_at_1"] == figures["baseline"][method]["map"] == 1.0, method
    # Every garment has a color of its own: of the 10 answers only the first shares the query's color.
    assert by_color["color_precision_at_10"] == 0.1


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
