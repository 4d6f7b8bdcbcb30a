import pytest

from kloset.core.errors import InvalidInput
from kloset.core.garments.labels import (
    CATEGORIES,
    COLORS,
    Group,
    categories_of,
    parse_any_category,
    parse_category,
    parse_color,
)


def test_vocabulary_sizes_match_k_fashion():
    assert len(CATEGORIES) == 12
    assert len(COLORS) == 21
    assert categories_of(Group.TOP) == ("top", "blouse", "knitwear", "shirt", "t_shirt", "bra_top", "hoodie")
    assert categories_of(Group.BOTTOM) == ("skirt", "jeans", "pants", "leggings", "jogger_pants")


@pytest.mark.parametrize(
    ("name", "code"),
    [("블라우스", "blouse"), ("티셔츠", "t_shirt"), ("조거팬츠", "jogger_pants"), ("T_Shirt", "t_shirt")],
)
def test_categories_accept_korean_names_and_codes(name, code):
    assert parse_category(name) == code


@pytest.mark.parametrize(("name", "code"), [("스카이블루", "sky_blue"), ("네이비", "navy"), ("navy", "navy")])
def test_colors_accept_korean_names_and_codes(name, code):
    assert parse_color(name) == code


@pytest.mark.parametrize(
    ("name", "code"),
    [("코트", "coat"), ("재킷", "jacket"), ("점퍼", "jumper"), ("패딩", "padding"), ("베스트", "vest"),
     ("가디건", "cardigan"), ("짚업", "zip_up"), ("드레스", "dress"), ("점프수트", "jumpsuit"), ("Coat", "coat"),
     ("블라우스", "blouse")],
)  # fmt: skip
def test_any_category_knows_all_21_of_k_fashion_outer_and_one_piece_included(name, code):
    assert parse_any_category(name) == code


def test_outer_and_one_piece_words_are_not_categories_kloset_indexes():
    with pytest.raises(InvalidInput, match="unknown category '코트'"):
        parse_category("코트")
    with pytest.raises(InvalidInput, match=r"unknown category '망토'; expected a K-Fashion category: 탑, .*점프수트$"):
        parse_any_category("망토")


def test_unknown_names_are_rejected_with_the_name():
    with pytest.raises(InvalidInput, match="'tuxedo'"):
        parse_category("tuxedo")
    with pytest.raises(InvalidInput, match="'마젠타'"):
        parse_color("마젠타")


def test_long_names_are_quoted_only_in_part():
    with pytest.raises(InvalidInput, match=r"unknown color 'xxx.*… \(20000 characters\)") as info:
        parse_color("x" * 20_000)
    assert len(str(info.value)) < 400
    with pytest.raises(InvalidInput, match=r"… \(20000 characters\)"):
        parse_category("티" * 20_000)
