"""The original project's HSV-histogram baseline, on small synthetic crops."""

from pathlib import Path

import numpy as np
import pytest

from kloset.bench.hsv_baseline import (
    HistogramFolders,
    combined_similarity,
    hsv_histogram,
    item_file_stem,
    read_crop,
)

SIZE = 32
RED = (220, 30, 30)
DARK_RED = (170, 20, 25)
BLUE = (30, 40, 210)
GREEN = (30, 190, 40)


def solid(rgb: tuple[int, int, int], noise_seed: int | None = None) -> np.ndarray:
    pixels = np.empty((SIZE, SIZE, 3), dtype=np.uint8)
    pixels[:] = rgb
    if noise_seed is not None:
        noise = np.random.default_rng(noise_seed).integers(-12, 13, size=pixels.shape)
        pixels = np.clip(pixels.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return pixels


def garment_on_background(garment: tuple[int, int, int], background: tuple[int, int, int]) -> tuple:
    """A centred garment square on a background that covers most of the crop, and the garment's mask."""
    pixels = solid(background)
    mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
    mask[12:20, 12:20] = 255
    pixels[mask > 0] = garment
    return pixels, mask


def test_histogram_shape_and_range() -> None:
    histogram = hsv_histogram(solid(RED, noise_seed=1))
    assert histogram.shape == (50, 60)
    assert histogram.dtype == np.float32
    assert histogram.max() == pytest.approx(1.0)
    assert histogram.min() == 0.0


def test_red_is_nearest_to_red_not_blue() -> None:
    query = hsv_histogram(solid(RED, noise_seed=1))
    candidates = [hsv_histogram(solid(BLUE, noise_seed=2)), hsv_histogram(solid(DARK_RED, noise_seed=3))]
    scores = combined_similarity(query, candidates)
    assert scores[1] > scores[0]


def test_combined_similarity_is_minus_mean_rank() -> None:
    query = hsv_histogram(solid(RED, noise_seed=1))
    candidates = [hsv_histogram(solid(c, noise_seed=i)) for i, c in enumerate([BLUE, RED, GREEN])]
    scores = combined_similarity(query, candidates)
    assert scores[1] == -1.0  # best under all four methods
    assert sorted(scores.tolist())[0] >= -3.0
    assert combined_similarity(query, []).shape == (0,)


def test_mask_restricts_the_histogram() -> None:
    pixels, mask = garment_on_background(RED, BLUE)
    query = hsv_histogram(pixels, mask)
    unmasked = hsv_histogram(pixels)
    red, blue = hsv_histogram(solid(RED, noise_seed=4)), hsv_histogram(solid(BLUE, noise_seed=5))
    masked_scores = combined_similarity(query, [blue, red])
    unmasked_scores = combined_similarity(unmasked, [blue, red])
    assert masked_scores[1] > masked_scores[0]
    assert unmasked_scores[0] > unmasked_scores[1]  # without the mask, the background wins


def test_write_bakes_the_mask_and_reading_restores_it(tmp_path: Path) -> None:
    folders = HistogramFolders(tmp_path)
    pixels, mask = garment_on_background(RED, BLUE)
    path = folders.write("0001/top", "top", "red", pixels, mask)
    assert path == tmp_path / "top" / "red" / "0001__top.png"
    read_pixels, read_mask = read_crop(path)
    assert np.array_equal(read_mask, mask)
    assert np.array_equal(read_pixels[mask > 0], pixels[mask > 0])
    assert not read_pixels[mask == 0].any()


def build_catalog(root: Path) -> HistogramFolders:
    folders = HistogramFolders(root)
    colors = {"red": [RED, DARK_RED], "blue": [BLUE], "green": [GREEN]}
    seed = 0
    for category in ("top", "pants"):
        for color, rgbs in colors.items():
            for index, rgb in enumerate(rgbs * 2):
                seed += 1
                pixels, mask = garment_on_background(rgb, GREEN if color != "green" else BLUE)
                noisy = solid(rgb, noise_seed=seed)
                pixels[mask > 0] = noisy[mask > 0]
                folders.write(f"{seed:04d}/{category}{index}", category, color, pixels, mask if seed % 3 else None)
    return folders


@pytest.mark.parametrize(
    ("categories", "colors"), [(None, None), (["top"], None), (None, ["red", "blue"]), (["pants"], ["red"])]
)
def test_search_and_search_cached_agree(tmp_path: Path, categories, colors) -> None:
    folders = build_catalog(tmp_path)
    query = hsv_histogram(*garment_on_background(RED, BLUE))
    from_disk = folders.search(query, categories, colors, limit=100)
    cached = folders.search_cached(query, categories, colors, limit=100)
    assert from_disk
    assert from_disk == cached
    assert folders.search(query, categories, colors, limit=3) == cached[:3]


def test_folders_restrict_the_search(tmp_path: Path) -> None:
    folders = build_catalog(tmp_path)
    query = hsv_histogram(solid(RED, noise_seed=99))
    for search in (folders.search, folders.search_cached):
        results = search(query, ["top"], ["red"], 100)
        assert len(results) == 4
        assert all(item_id.split("/")[1].startswith("top") for item_id, _ in results)
        assert all(item_id.split("/")[1].startswith("pants") for item_id, _ in search(query, ["pants"], None, 100))
        assert search(query, ["hat"], None, 10) == []


def test_everything_searched_finds_red_first(tmp_path: Path) -> None:
    folders = build_catalog(tmp_path)
    pixels, mask = garment_on_background(RED, BLUE)
    best_id, _ = folders.search(hsv_histogram(pixels, mask), None, None, 1)[0]
    seed = int(best_id.split("/")[0])
    assert (seed - 1) % 8 < 4  # each category's first four items are the red folder


def test_item_ids_with_slashes_round_trip(tmp_path: Path) -> None:
    folders = HistogramFolders(tmp_path)
    ids = ["0001/top", "0002/outer/1", "plain"]
    for item_id in ids:
        folders.write(item_id, "top", "red", solid(RED, noise_seed=len(item_id)), None)
    query = hsv_histogram(solid(RED))
    assert sorted(item_id for item_id, _ in folders.search(query, None, None, 10)) == sorted(ids)
    assert sorted(item_id for item_id, _ in folders.search_cached(query, None, None, 10)) == sorted(ids)


@pytest.mark.parametrize("item_id", ["", "a__b", "a_/b"])
def test_item_ids_that_would_not_round_trip_are_refused(item_id: str) -> None:
    with pytest.raises(ValueError):
        item_file_stem(item_id)


def test_moving_an_item_to_another_folder_leaves_one_copy(tmp_path: Path) -> None:
    folders = HistogramFolders(tmp_path)
    folders.write("0001/top", "top", "red", solid(RED), None)
    folders.write("0001/top", "top", "blue", solid(BLUE), None)
    query = hsv_histogram(solid(BLUE))
    assert [item_id for item_id, _ in folders.search(query, None, None, 10)] == ["0001/top"]
    assert folders.search(query, None, None, 10) == folders.search_cached(query, None, None, 10)
