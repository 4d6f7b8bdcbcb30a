import numpy as np
import pytest

from kloset.core.errors import ModelError
from kloset.core.garments.crop import crop_garment
from kloset.core.garments.labels import Group
from kloset.core.garments.regions import Region, fit_region
from kloset.core.models.segmenter import Letterbox, Segmenter, largest_component
from kloset.core.models.segmenter_training import evaluate_segmenter, segmentation_figures, target_mask


def test_largest_component_after_opening_drops_specks_and_smaller_parts():
    mask = np.zeros((40, 40), dtype=bool)
    mask[5:25, 5:25] = True  # the garment
    mask[30:36, 30:36] = True  # a smaller blob
    mask[2, 38] = True  # a speck
    kept = largest_component(mask, opening=3)
    assert kept[10, 10] and not kept[32, 32] and not kept[2, 38]
    assert kept.sum() == 400


def test_largest_component_of_nothing_is_nothing():
    assert not largest_component(np.zeros((10, 10), dtype=bool), opening=3).any()


def test_letterbox_round_trip_keeps_the_photo_aligned():
    box = Letterbox.fit(300, 100, 64, 48)  # a tall photo in a 64 x 48 input
    assert (box.height, box.width) == (64, 21) and box.left == 13
    plane = np.zeros((64, 48), dtype=np.float32)
    plane[box.top : box.top + box.height, box.left : box.left + box.width] = 1.0
    back = box.undo(plane, 300, 100)
    assert back.shape == (300, 100) and back.min() > 0.99


def test_a_mask_region_crops_like_a_polygon():
    pixels = np.zeros((50, 80, 3), dtype=np.uint8)
    pixels[10:30, 20:60] = 200
    mask = np.zeros((50, 80), dtype=bool)
    mask[10:30, 20:60] = True
    crop = crop_garment(pixels, fit_region(Region(group=Group.TOP, mask=mask), 80, 50), 32)
    assert crop.garment_pixels.shape == (800, 3) and np.all(crop.garment_pixels == 200)


def test_segmentation_figures_count_intersections_over_unions():
    truth = np.array([[0, 1, 1, 2], [0, 1, 2, 2]])
    guess = np.array([[0, 1, 0, 2], [1, 1, 2, 2]])
    figures = segmentation_figures(truth, guess)
    assert figures["iou_top"] == round(2 / 4, 4) and figures["iou_bottom"] == 1.0
    assert figures["miou"] == 0.75 and figures["pixel_accuracy"] == 0.75


def test_targets_rasterise_top_and_bottom(sample_catalog):
    from kloset.core.garments.kfashion import parse_label

    label = parse_label((sample_catalog / "labels" / "0001.json").read_bytes())
    target = target_mask((label.height, label.width), label)
    assert set(np.unique(target)) == {0, 1, 2}
    dress = parse_label((sample_catalog / "labels" / "0010.json").read_bytes())
    assert set(np.unique(target_mask((dress.height, dress.width), dress))) == {0, 4}  # one_piece


def test_trained_segmenter_finds_the_drawn_garments(tiny_segmenter_dir, sample_catalog):
    from kloset.core.garments.images import decode_image

    segmenter = Segmenter.load(tiny_segmenter_dir)
    pixels = decode_image((sample_catalog / "images" / "0001.jpg").read_bytes(), 10**7)
    masks = segmenter.segment(pixels)
    assert set(masks) == {Group.TOP, Group.BOTTOM}
    top_rows = np.flatnonzero(masks[Group.TOP].any(axis=1))
    bottom_rows = np.flatnonzero(masks[Group.BOTTOM].any(axis=1))
    assert top_rows.mean() < bottom_rows.mean()  # the top is above the bottom
    figures = evaluate_segmenter(segmenter, sample_catalog)
    assert figures["n"] == 30 and figures["miou"] > 0.5


def test_missing_segmenter_is_a_clear_start_up_error(tmp_path):
    with pytest.raises(ModelError, match=r"segmenter\.json is missing"):
        Segmenter.load(tmp_path)
