"""`kloset bench relevance`: refuses queries it has seen, and reports exact precisions where the answer is known."""

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from kloset.bench.relevance import RelevanceBench, Scores, ideal_gains, ndcg
from kloset.bench.retrieval import Truth
from kloset.bench.unseen import BenchRefused, split
from kloset.core.garments.labels import Group
from kloset.core.models.training import is_validation

KLOSET = str(Path(sys.executable).with_name("kloset"))
METRICS = {"category_precision_at_10", "color_precision_at_10", "both_precision_at_10", "ndcg_at_10",
           "any_both_at_10", "short_lists", "ms_per_query"}  # fmt: skip


def _relabel(label: Path, top: tuple[str, str], bottom: tuple[str, str]) -> None:
    """Rewrite a K-Fashion label's 상의 and 하의 category and color (Korean names)."""
    doc = json.loads(label.read_text(encoding="utf-8"))
    labels = doc["데이터셋 정보"]["데이터셋 상세설명"]["라벨링"]
    for group, (category, color) in (("상의", top), ("하의", bottom)):
        if labels.get(group) and labels[group][0]:
            labels[group] = [{"카테고리": category, "색상": color}]
    label.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")


def _copy(source: Path, target: Path, prefix: str = "") -> Path:
    """A K-Fashion folder copied, each photo and label renamed with a prefix (new ids)."""
    for sub in ("images", "labels"):
        (target / sub).mkdir(parents=True, exist_ok=True)
        for path in sorted((source / sub).iterdir()):
            shutil.copyfile(path, target / sub / f"{prefix}{path.name}")
    return target


def test_scores_count_precisions_ndcg_and_short_lists_exactly():
    truth = Truth("q/top", Group.TOP, "blouse", "white")
    scores = Scores()
    # 2 both right, 3 right category only, 1 right color only, 4 neither.
    results = [("blouse", "white")] * 2 + [("blouse", "black")] * 3 + [("shirt", "white")] + [("shirt", "red")] * 4
    ideal = [2] * 10
    scores.add(truth, results, ideal)
    scores.add(truth, results[:4], ideal)  # a short list: 2 both right, 2 category only
    scores.miss()
    summary = scores.summary()
    assert summary["category_precision_at_10"] == round((5 / 10 + 4 / 10 + 0) / 3, 4)
    assert summary["color_precision_at_10"] == round((3 / 10 + 2 / 10 + 0) / 3, 4)
    assert summary["both_precision_at_10"] == round((2 / 10 + 2 / 10 + 0) / 3, 4)
    assert summary["any_both_at_10"] == round(2 / 3, 4)
    assert summary["short_lists"] == 1 and scores.missed == 1
    assert ndcg([2] * 10, [2] * 10) == 1.0 and ndcg([0] * 10, [2] * 10) == 0.0
    assert ndcg([1, 2], [2, 1]) == pytest.approx((1 + 2 / 1.5849625) / (2 + 1 / 1.5849625))
    catalog = [Truth("a/top", Group.TOP, "blouse", "white"), Truth("b/top", Group.TOP, "shirt", "white"),
               Truth("c/bottom", Group.BOTTOM, "skirt", "white")]  # fmt: skip
    assert ideal_gains(truth, catalog) == [2, 1]  # the bottom is not in the top's group


@pytest.fixture
def relabelled(sample_catalog, tmp_path) -> tuple[Path, Path]:
    """The models' training folder with every top a white blouse and every bottom a black skirt, and a folder of
    new photos (other drawings, other ids) labelled the same but for one top, a white t-shirt."""
    from kloset.core.garments.sample import write_sample_catalog

    data = _copy(sample_catalog, tmp_path / "data")
    for label in (data / "labels").iterdir():
        _relabel(label, ("블라우스", "화이트"), ("스커트", "블랙"))
    fresh = tmp_path / "fresh"
    write_sample_catalog(fresh, n=5, seed=99)
    queries = _copy(fresh, tmp_path / "queries", prefix="q")
    for label in sorted((queries / "labels").iterdir()):
        top = ("티셔츠", "화이트") if label.name == "q0001.json" else ("블라우스", "화이트")
        _relabel(label, top, ("스커트", "블랙"))
    return data, queries


def test_refuses_queries_that_are_catalog_or_training_photos(relabelled, tmp_path):
    data, queries = relabelled
    split(RelevanceBench(data=data, queries=queries))  # new photos: accepted
    same_id = _copy(queries, tmp_path / "same-id")
    shutil.copyfile(data / "images" / "0002.jpg", same_id / "images" / "0002.jpg")
    shutil.copyfile(data / "labels" / "0002.json", same_id / "labels" / "0002.json")
    with pytest.raises(BenchRefused, match="0002 is in the catalog"):
        split(RelevanceBench(data=data, queries=same_id))
    same_bytes = _copy(queries, tmp_path / "same-bytes")
    shutil.copyfile(data / "images" / "0003.jpg", same_bytes / "images" / "q0002.jpg")
    with pytest.raises(BenchRefused, match=r"q0002\.jpg has the same bytes as catalog photo 0003\.jpg"):
        split(RelevanceBench(data=data, queries=same_bytes))
    reencoded = _copy(queries, tmp_path / "reencoded")
    buffer = io.BytesIO()
    Image.open(data / "images" / "0004.jpg").resize((200, 267)).save(buffer, "JPEG", quality=60)
    (reencoded / "images" / "q0002.jpg").write_bytes(buffer.getvalue())
    with pytest.raises(BenchRefused, match=r"q0002\.jpg is the same picture as catalog photo 0004\.jpg"):
        split(RelevanceBench(data=data, queries=reencoded))


def test_refuses_a_tag_only_training_photo_as_a_query(relabelled, tmp_path):
    data, queries = relabelled
    (data / "queries" / "images").mkdir(parents=True)
    shutil.copyfile(queries / "images" / "q0003.jpg", data / "queries" / "images" / "9003.jpg")
    with pytest.raises(BenchRefused, match=r"q0003\.jpg has the same bytes as training photo 9003\.jpg"):
        split(RelevanceBench(data=data, queries=queries, trained_on_extras=True))
    split(RelevanceBench(data=data, queries=queries, trained_on_extras=False))


def test_by_default_the_queries_are_the_validation_photos_and_the_catalog_the_rest(sample_catalog):
    catalog, queries, _ = split(RelevanceBench(data=sample_catalog, validation_percent=30))
    assert queries and catalog
    assert all(is_validation(p.photo_id, 30) for p in queries)
    assert not any(is_validation(p.photo_id, 30) for p in catalog)
    assert {p.photo_id for p in queries}.isdisjoint(p.photo_id for p in catalog)


def test_by_default_a_validation_photo_seen_in_training_is_left_out_and_named(sample_catalog, tmp_path):
    data = _copy(sample_catalog, tmp_path / "data")
    _, queries, _ = split(RelevanceBench(data=data, validation_percent=30))
    seen = queries[0]
    (data / "queries" / "images").mkdir(parents=True)
    shutil.copyfile(seen.path, data / "queries" / "images" / "9001.jpg")  # the same picture, as a tag-only photo
    _, kept, left_out = split(RelevanceBench(data=data, validation_percent=30, trained_on_extras=True))
    assert [p.photo_id for p in kept] == [p.photo_id for p in queries[1:]]
    assert left_out == {seen.photo_id: f"{seen.path.name} has the same bytes as training photo 9001.jpg"}


def test_the_cli_refuses_with_a_message(relabelled, tmp_path):
    data, queries = relabelled
    shutil.copyfile(data / "images" / "0003.jpg", queries / "images" / "q0002.jpg")
    out = subprocess.run([KLOSET, "bench", "relevance", "--data", str(data), "--queries", str(queries)],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 1 and "not unseen photos" in out.stderr and "q0002.jpg" in out.stderr


def test_reports_the_known_precisions_over_the_real_stack(relabelled, tiny_model_dir, tiny_segmenter_dir, tmp_path):
    """Every catalog top is a white blouse and every bottom a black skirt, so whatever the models predict and
    however a policy ranks, each full list of a query garment is all white blouses (or black skirts): the one
    query top labelled a white t-shirt scores 0 on category and 1 on color, every other garment 1 on both."""
    data, queries = relabelled
    env = {**os.environ, "KLOSET_MODEL_DIR": str(tiny_model_dir), "KLOSET_SEGMENTER_DIR": str(tiny_segmenter_dir),
           "KLOSET_DATA_DIR": str(tmp_path / "var")}  # fmt: skip
    plot = tmp_path / "relevance.png"
    out = subprocess.run(
        [KLOSET, "bench", "relevance", "--data", str(data), "--queries", str(queries), "--json", "--plot", str(plot),
         "--near-duplicates", "3"],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    figures = json.loads(out.stdout)
    n = figures["n_queries"]
    assert figures["n_catalog"] == 54 and n == 10  # 27 photos of tops and bottoms; 5 query photos
    for policy in ("strict", "soft", "none"):
        region = figures["region"][policy]
        assert set(region) == METRICS and region["short_lists"] == 0
        assert region["category_precision_at_10"] == round((n - 1) / n, 4)
        assert region["color_precision_at_10"] == 1.0
        assert region["both_precision_at_10"] == round((n - 1) / n, 4)
        assert region["any_both_at_10"] == round((n - 1) / n, 4)
        # The t-shirt's list is as good as this catalog allows (no white t-shirt in it, gain 1 at best): nDCG 1.
        assert region["ndcg_at_10"] == 1.0
        photo = figures["photo"][policy]
        listed = n - figures["details"]["garments_without_a_list"]["photo"]
        assert photo["color_precision_at_10"] == round(listed / n, 4)
        assert photo["category_precision_at_10"] in (round(listed / n, 4), round((listed - 1) / n, 4))
    assert set(figures["classifier"]) == {"photo", "region"} and set(figures["baseline"]) == {"photo", "region"}
    assert set(figures["baseline"]["region"]) == METRICS
    assert set(figures["near_duplicate"]["region"]) == {"n", "recall_at_1", "recall_at_10"}
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert not (tmp_path / "var").exists()  # the user's data folder is never touched
