import io

import numpy as np
import pytest
from PIL import Image

from kloset.bench.views import ViewTransform, encode_jpeg, make_view
from kloset.core.garments.images import decode_image

LIMIT = 100_000_000


def png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def noise_photo(width: int = 160, height: int = 120, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def marked_photo(width: int, height: int, x: int, y: int) -> np.ndarray:
    """Black, with a 3x3 white square centred on (x, y)."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[y - 1 : y + 2, x - 1 : x + 2] = 255
    return pixels


def bright_centre(view: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(view.mean(axis=2) > 128)
    return float(xs.mean()), float(ys.mean())


def plain(**changes) -> ViewTransform:
    fields = dict(left=0, top=0, width=10, height=8, mirrored=False, brightness=0.0, contrast=1.0)
    return ViewTransform(**(fields | changes))


BOX = np.array([[20.0, 20.0], [100.0, 20.0], [100.0, 90.0], [20.0, 90.0]])


def test_same_seed_same_bytes_and_different_seeds_differ():
    photo = png(noise_photo())
    first = make_view(photo, [BOX], seed=7)
    again = make_view(photo, [BOX], seed=7)
    other = make_view(photo, [BOX], seed=8)
    assert first[0] == again[0]
    assert first[2] == again[2]
    np.testing.assert_array_equal(first[1][0], again[1][0])
    assert other[0] != first[0]
    assert other[2] != first[2]


@pytest.mark.parametrize(("width", "height"), [(160, 120), (37, 251), (1, 1), (2, 900)])
def test_kept_area_is_between_85_and_100_percent(width, height):
    rng = np.random.default_rng(1)
    kept = []
    for _ in range(500):
        t = ViewTransform.draw(rng, width, height)
        assert t.left >= 0 and t.left + t.width <= width
        assert t.top >= 0 and t.top + t.height <= height
        kept.append(t.width * t.height / (width * height))
    assert min(kept) >= 0.85 and max(kept) <= 1.0
    if min(width, height) >= 100:  # both sides long enough for rounding up not to hide the drawn fraction
        assert min(kept) < 0.87 and max(kept) > 0.98


def test_crop_sides_shrink_alike():
    rng = np.random.default_rng(2)
    for _ in range(200):
        t = ViewTransform.draw(rng, 400, 300)
        assert abs(t.width / 400 - t.height / 300) < 0.01


def test_about_half_mirrored():
    rng = np.random.default_rng(3)
    mirrored = sum(ViewTransform.draw(rng, 160, 120).mirrored for _ in range(200))
    assert 70 <= mirrored <= 130


def test_brightness_and_contrast_stay_within_15_percent():
    rng = np.random.default_rng(4)
    draws = [ViewTransform.draw(rng, 160, 120) for _ in range(500)]
    brightness = [t.brightness for t in draws]
    contrast = [t.contrast for t in draws]
    assert -0.15 <= min(brightness) < -0.13 and 0.13 < max(brightness) <= 0.15
    assert 0.85 <= min(contrast) < 0.87 and 1.13 < max(contrast) <= 1.15


def test_brightness_and_contrast_formula_and_clipping():
    grey = np.full((8, 10, 3), 200, dtype=np.uint8)
    view = plain(brightness=0.1, contrast=1.1).apply_to_pixels(grey)
    assert view.dtype == np.uint8
    assert np.all(view == round((200 - 128) * 1.1 + 128 + 25.5))
    assert np.all(plain(brightness=0.15, contrast=1.15).apply_to_pixels(np.full((8, 10, 3), 255, np.uint8)) == 255)
    assert np.all(plain(brightness=-0.15, contrast=1.15).apply_to_pixels(np.zeros((8, 10, 3), np.uint8)) == 0)


@pytest.mark.parametrize("mirrored", [False, True])
def test_marked_point_lands_where_apply_to_points_says(mirrored):
    x, y = 57, 33
    photo = marked_photo(120, 90, x, y)
    transform = plain(left=9, top=5, width=104, height=80, mirrored=mirrored, brightness=0.1, contrast=0.9)
    expected = transform.apply_to_points(np.array([[x, y]], dtype=float))[0]
    assert bright_centre(transform.apply_to_pixels(photo)) == (expected[0], expected[1])
    assert expected[0] == (104 - 1 - (x - 9) if mirrored else x - 9)


def test_marked_point_lands_right_under_drawn_transforms():
    x, y = 60, 45  # central, so that no crop keeping 85 % of the area can cut it off
    photo = marked_photo(120, 90, x, y)
    rng = np.random.default_rng(5)
    seen_mirrored = set()
    for _ in range(50):
        transform = ViewTransform.draw(rng, 120, 90)
        seen_mirrored.add(transform.mirrored)
        expected = transform.apply_to_points(np.array([[x, y]], dtype=float))[0]
        assert bright_centre(transform.apply_to_pixels(photo)) == (expected[0], expected[1])
    assert seen_mirrored == {False, True}


def test_polygons_are_clipped_inside_the_view():
    transform = plain(left=10, top=7, width=90, height=70, mirrored=True)
    outside = np.array([[-50.0, -20.0], [300.0, -20.0], [300.0, 200.0], [-50.0, 200.0]])
    points = transform.apply_to_points(outside)
    assert points.min() >= 0
    assert np.all(points[:, 0] <= 89) and np.all(points[:, 1] <= 69)
    assert np.ptp(points[:, 0]) == 89 and np.ptp(points[:, 1]) == 69


def test_make_view_polygons_inside_view_and_cut_off_garment_is_none():
    photo = png(noise_photo(160, 120))
    sliver = np.array([[0.0, 10.0], [2.0, 10.0], [2.0, 60.0], [0.0, 60.0]])  # gone once the crop starts past x = 2
    for seed in range(100):
        _, polygons, transform = make_view(photo, [BOX, sliver], seed)
        box = polygons[0]
        assert box is not None
        assert box.min() >= 0 and np.all(box <= (transform.width - 1, transform.height - 1))
        if transform.left > 2:
            assert polygons[1] is None
            return
    pytest.fail("no seed cropped past the sliver")


def test_jpeg_decodes_to_the_crop_size():
    photo = png(noise_photo(161, 117))
    for seed in range(5):
        data, _, transform = make_view(photo, [], seed)
        assert decode_image(data, LIMIT).shape == (transform.height, transform.width, 3)


def test_encode_jpeg_defaults_to_quality_60():
    pixels = noise_photo(64, 48)
    assert encode_jpeg(pixels) == encode_jpeg(pixels, quality=60)
    assert encode_jpeg(pixels) != encode_jpeg(pixels, quality=90)
