import pytest

from kloset.core.config import Settings
from kloset.core.errors import InvalidInput
from kloset.core.limits import InputLimits

LIMITS = InputLimits(max_label_bytes=100, max_polygons=3, max_points=5)


@pytest.mark.parametrize(
    ("check", "message"),
    [
        (lambda: LIMITS.check_polygons(4, "garment 2"),
         r"^garment 2 has 4 polygons; a garment may have at most 3 \(KLOSET_MAX_POLYGONS_PER_GARMENT\)$"),
        (lambda: LIMITS.check_points(6, "상의 polygon 2"),
         r"^상의 polygon 2 has 6 points; a polygon may have at most 5 \(KLOSET_MAX_POINTS_PER_POLYGON\)$"),
        (lambda: LIMITS.check_label_size(101),
         r"^label is 101 bytes, over the limit of 100 bytes \(KLOSET_MAX_LABEL_BYTES\)$"),
    ],
)  # fmt: skip
def test_one_over_a_limit_is_refused_naming_the_variable_and_the_count(check, message):
    with pytest.raises(InvalidInput, match=message):
        check()


def test_the_bound_itself_is_allowed():
    LIMITS.check_polygons(3, "garment 1")
    LIMITS.check_points(5, "garment 1 polygon 1")
    LIMITS.check_label_size(100)


def test_settings_hand_their_limits_to_the_core_and_share_its_defaults():
    assert Settings().input_limits == InputLimits()
    settings = Settings(max_image_pixels=10, max_label_bytes=20, max_garments_per_request=3,
                        max_polygons_per_garment=4, max_points_per_polygon=50)  # fmt: skip
    assert settings.input_limits == InputLimits(
        max_pixels=10, max_label_bytes=20, max_garments=3, max_polygons=4, max_points=50
    )
