import numpy as np
import pytest

from kloset.core.errors import InvalidInput
from kloset.core.garments.crop import NEUTRAL_RGB, crop_garment, garment_mask, letterbox
from kloset.core.garments.regions import Box, Region, fit_region, make_polygon


def image(height=100, width=200) -> np.ndarray:
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[20:60, 50:150] = (255, 0, 0)  # a red 100 x 40 garment
    return pixels


def square(x0, y0, x1, y1) -> np.ndarray:
    return make_polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])


def test_mask_is_the_union_of_all_polygons():
    region = Region(polygons=(square(0, 0, 9, 9), square(20, 0, 29, 9)))
    mask = garment_mask(20, 40, region)
    assert mask.sum() == 200
    assert mask[5, 5] and mask[5, 25] and not mask[5, 15]


def test_crop_keeps_the_aspect_ratio_on_a_neutral_square():
    crop = crop_garment(image(), Region(polygons=(square(50, 20, 149, 59),)), 64)
    assert crop.pixels.shape == (64, 64, 3)
    red = np.all(crop.pixels == (255, 0, 0), axis=-1)
    rows, cols = np.flatnonzero(red.any(axis=1)), np.flatnonzero(red.any(axis=0))
    assert cols.size == 64  # the long side fills the square
    assert 24 <= rows.size <= 27  # 40/100 of 64 = 25.6: not stretched to a square
    assert tuple(crop.pixels[0, 0]) == NEUTRAL_RGB and tuple(crop.pixels[-1, -1]) == NEUTRAL_RGB


def test_pixels_outside_the_polygon_become_neutral():
    triangle = make_polygon([(50, 20), (149, 20), (50, 59)])
    crop = crop_garment(image(), Region(polygons=(triangle,)), 64)
    assert tuple(crop.pixels[5, 60]) == NEUTRAL_RGB  # lower right half of the box is outside the triangle
    assert np.all(crop.garment_pixels == (255, 0, 0))


def test_box_region_and_whole_image():
    assert crop_garment(image(), Region(box=Box(50, 20, 100, 40)), 32).garment_pixels.shape == (4000, 3)
    assert crop_garment(image(), Region(), 32).garment_pixels.shape == (20_000, 3)


def test_letterbox_of_a_tall_image_is_centred():
    tall = np.full((100, 10, 3), 7, dtype=np.uint8)
    out = letterbox(tall, 50)
    assert tuple(out[25, 25]) == (7, 7, 7) and tuple(out[25, 0]) == NEUTRAL_RGB


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([(1, 1), (5, 5)], "at least 3"),
        ([(1, 1), (5, float("nan")), (9, 1)], "NaN"),
        ([(1, 1), (5, float("inf")), (9, 1)], "NaN or infinite"),
    ],
)
def test_bad_polygons(points, message):
    with pytest.raises(InvalidInput, match=message):
        make_polygon(points)


def test_polygon_outside_the_image_is_rejected_and_a_grazing_one_clipped():
    with pytest.raises(InvalidInput, match="outside the 200x100 image"):
        fit_region(Region(polygons=(square(150, 50, 260, 90),)), 200, 100)
    fitted = fit_region(Region(polygons=(square(-1, -1, 200, 100),)), 200, 100)
    assert fitted.polygons[0].min() == 0 and fitted.polygons[0][:, 0].max() == 199
