import numpy as np

from kloset.core.garments.color import COLOR_FEATURES_DIM, color_features, rgb_to_lab


def test_lab_of_reference_colors():
    lab = rgb_to_lab(np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0]], dtype=np.uint8))
    np.testing.assert_allclose(lab[0], [100, 0, 0], atol=0.5)
    np.testing.assert_allclose(lab[1], [0, 0, 0], atol=0.5)
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.5)


def test_features_separate_colors_and_histogram_sums_to_one():
    red = color_features(np.tile([[200, 20, 30]], (50, 1)).astype(np.uint8))
    navy = color_features(np.tile([[30, 40, 80]], (50, 1)).astype(np.uint8))
    assert red.shape == (COLOR_FEATURES_DIM,)
    assert np.isclose(red[: COLOR_FEATURES_DIM - 6].sum(), 1.0)
    assert np.argmax(red[:-6]) != np.argmax(navy[:-6])
    assert not color_features(np.zeros((0, 3), dtype=np.uint8)).any()
