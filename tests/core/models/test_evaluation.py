import json

import numpy as np

from kloset.core.garments.images import encode_jpeg
from kloset.core.garments.kfashion import label_document
from kloset.core.garments.labels import CATEGORIES
from kloset.core.models.attributes import AttributeModel
from kloset.core.models.evaluation import evaluate_attributes
from kloset.core.models.plots import save_confusion

TOP = np.array([[10.0, 10.0], [50.0, 10.0], [50.0, 40.0], [10.0, 40.0]])
BOTTOM = np.array([[10.0, 50.0], [50.0, 50.0], [50.0, 90.0], [10.0, 90.0]])


def photo(folder, stem, garments):
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    pixels = np.full((100, 60, 3), 150, dtype=np.uint8)
    pixels[10:41, 10:51] = (200, 30, 40)
    (folder / "images" / f"{stem}.jpg").write_bytes(encode_jpeg(pixels))
    doc = label_document(f"{stem}.jpg", 60, 100, garments)
    (folder / "labels" / f"{stem}.json").write_text(json.dumps(doc, ensure_ascii=False))


def test_counts_on_a_hand_made_folder(tmp_path, tiny_model_dir):
    folder = tmp_path / "kfashion"
    photo(folder, "a", {"상의": ([TOP], "티셔츠", "레드"), "하의": ([BOTTOM], "팬츠", "화이트")})
    photo(folder, "b", {"상의": ([TOP], "니트웨어", "네이비")})
    photo(folder, "c", {"원피스": ([TOP], "드레스", "블랙")})  # not indexed: not counted
    photo(folder, "d", {"하의": ([BOTTOM], "스커트", None)})  # no color to score against: not counted
    figures, matrices = evaluate_attributes(AttributeModel.load(tiny_model_dir), folder)
    assert figures["n"] == 3
    supports = {k: v["support"] for k, v in figures["per_class"]["category"].items() if v["support"]}
    assert supports == {"t_shirt": 1, "knitwear": 1, "pants": 1}
    colors = {k: v["support"] for k, v in figures["per_class"]["color"].items() if v["support"]}
    assert colors == {"red": 1, "white": 1, "navy": 1}
    assert matrices["category"].sum() == 3 and matrices["color"].sum() == 3
    assert 0 <= figures["category_accuracy"] <= 1 and "category_accuracy_top" in figures
    assert save_confusion(matrices["category"], CATEGORIES, tmp_path / "c.png", "categories").is_file()


def test_validation_split_only_scores_held_out_photos(tiny_model_dir, sample_catalog):
    from kloset.core.models.training import is_validation

    model = AttributeModel.load(tiny_model_dir)
    figures, _ = evaluate_attributes(model, sample_catalog, "validation")
    held = [f"{i:04d}" for i in range(1, 31) if i % 10 and is_validation(f"{i:04d}", 15)]
    assert figures["n"] == 2 * len(held)
