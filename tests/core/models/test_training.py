import json

from kloset.core.models.attributes import INFO_FILE
from kloset.core.models.training import extract_features, is_validation, train_heads
from tests.conftest import TINY_INPUT_SIZE


def test_split_by_image_id_is_deterministic_and_about_the_asked_share():
    ids = [f"{i:04d}" for i in range(2000)]
    val = [i for i in ids if is_validation(i, 15)]
    assert val == [i for i in ids if is_validation(i, 15)]
    assert 0.12 < len(val) / len(ids) < 0.18


def test_training_writes_weights_with_version_and_metrics(tiny_model_dir):
    info = json.loads((tiny_model_dir / INFO_FILE).read_text())
    assert info["input_size"] == TINY_INPUT_SIZE
    assert info["version"].startswith(f"attributes-{TINY_INPUT_SIZE}px-")
    assert info["training"]["garments_train"] + info["training"]["garments_validation"] == 54  # 27 photos x 2
    assert 0.0 <= info["training"]["validation"]["color_accuracy"] <= 1.0


def test_feature_cache_is_reused(sample_catalog, tmp_path):
    cache = tmp_path / "features.npz"
    first = extract_features(sample_catalog, TINY_INPUT_SIZE, None, cache)
    assert cache.is_file()
    again = extract_features(sample_catalog, TINY_INPUT_SIZE, None, cache)
    assert [i.image_id for i in again.items] == [i.image_id for i in first.items]
    assert (again.features == first.features).all()
    info = train_heads(again, input_size=TINY_INPUT_SIZE, out_dir=tmp_path / "m", epochs=2)
    assert info.version != ""
