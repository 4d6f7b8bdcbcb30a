import numpy as np
import pytest

from kloset.core.errors import ModelError
from kloset.core.garments.crop import NEUTRAL_RGB
from kloset.core.models.backbone import FEATURE_DIM, build_backbone, build_network, default_weights_path, preprocess


def test_features_of_a_crop_have_the_documented_size_and_are_deterministic():
    backbone = build_backbone(64, default_weights_path())
    pixels = np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    first = np.asarray(backbone(preprocess(pixels))["features"])
    assert first.shape == (2, FEATURE_DIM) and np.all(first >= 0)  # ReLU6 then averaging
    assert np.allclose(first, np.asarray(backbone(preprocess(pixels))["features"]))
    assert not np.allclose(first[0], first[1])


def test_the_neutral_background_is_no_signal_after_preprocessing():
    assert np.abs(preprocess(np.array([[NEUTRAL_RGB]], dtype=np.uint8))).max() < 0.01


def test_too_small_an_input_is_a_model_error():
    with pytest.raises(ModelError, match="too small"):
        build_network(16, 64, default_weights_path())


def test_weights_of_another_network_are_a_model_error(tmp_path, monkeypatch):
    import kloset.core.models.backbone as backbone

    monkeypatch.setattr(backbone, "read_state_dict", lambda path: {"_conv_stem.weight": np.zeros((32, 3, 3, 3))})
    with pytest.raises(ModelError, match="does not hold EfficientNet-Lite0 weights"):
        build_network(64, 64, tmp_path / "other.pth")
