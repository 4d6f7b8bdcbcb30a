"""The K-Fashion vocabulary kloset indexes: garment groups, categories and colors.

Codes travel as snake_case English; the Korean K-Fashion names are accepted on input and mapped.
"""

from enum import StrEnum

from kloset.core.errors import InvalidInput, quoted


class Group(StrEnum):
    TOP = "top"
    BOTTOM = "bottom"


# K-Fashion group names; 아우터 (outer) and 원피스 (one-piece) exist in the data but are not indexed.
KOREAN_GROUPS: dict[str, Group] = {"상의": Group.TOP, "하의": Group.BOTTOM}
UNINDEXED_KOREAN_GROUPS = ("아우터", "원피스")

_CATEGORIES: tuple[tuple[str, str, Group], ...] = (
    ("top", "탑", Group.TOP),
    ("blouse", "블라우스", Group.TOP),
    ("knitwear", "니트웨어", Group.TOP),
    ("shirt", "셔츠", Group.TOP),
    ("t_shirt", "티셔츠", Group.TOP),
    ("bra_top", "브라탑", Group.TOP),
    ("hoodie", "후드티", Group.TOP),
    ("skirt", "스커트", Group.BOTTOM),
    ("jeans", "청바지", Group.BOTTOM),
    ("pants", "팬츠", Group.BOTTOM),
    ("leggings", "레깅스", Group.BOTTOM),
    ("jogger_pants", "조거팬츠", Group.BOTTOM),
)

_COLORS: tuple[tuple[str, str], ...] = (
    ("white", "화이트"),
    ("black", "블랙"),
    ("beige", "베이지"),
    ("pink", "핑크"),
    ("sky_blue", "스카이블루"),
    ("blue", "블루"),
    ("gray", "그레이"),
    ("navy", "네이비"),
    ("brown", "브라운"),
    ("red", "레드"),
    ("lavender", "라벤더"),
    ("silver", "실버"),
    ("yellow", "옐로우"),
    ("khaki", "카키"),
    ("wine", "와인"),
    ("purple", "퍼플"),
    ("mint", "민트"),
    ("orange", "오렌지"),
    ("green", "그린"),
    ("gold", "골드"),
    ("neon", "네온"),
)

# The rest of K-Fashion's categories, those of 아우터 and 원피스: known words in a label, never indexed.
_UNINDEXED_CATEGORIES: tuple[tuple[str, str], ...] = (
    ("coat", "코트"),
    ("jacket", "재킷"),
    ("jumper", "점퍼"),
    ("padding", "패딩"),
    ("vest", "베스트"),
    ("cardigan", "가디건"),
    ("zip_up", "짚업"),
    ("dress", "드레스"),
    ("jumpsuit", "점프수트"),
)

CATEGORIES: tuple[str, ...] = tuple(code for code, _, _ in _CATEGORIES)
COLORS: tuple[str, ...] = tuple(code for code, _ in _COLORS)
CATEGORY_GROUP: dict[str, Group] = {code: group for code, _, group in _CATEGORIES}
_CATEGORY_NAMES: dict[str, str] = {korean: code for code, korean, _ in _CATEGORIES} | {c: c for c in CATEGORIES}
_ANY_CATEGORY_NAMES: dict[str, str] = (
    _CATEGORY_NAMES
    | {korean: code for code, korean in _UNINDEXED_CATEGORIES}
    | {code: code for code, _ in _UNINDEXED_CATEGORIES}
)
_COLOR_NAMES: dict[str, str] = {korean: code for code, korean in _COLORS} | {c: c for c in COLORS}


def categories_of(group: Group) -> tuple[str, ...]:
    """The category codes that belong to a garment group, in model output order."""
    return tuple(code for code in CATEGORIES if CATEGORY_GROUP[code] == group)


def _key(name: str) -> str:
    """A name as the tables spell it: codes in lower case, Korean as it is, without surrounding space."""
    return name.strip().lower() if name.isascii() else name.strip()


def parse_category(name: str) -> str:
    """Map a category code or Korean K-Fashion name to its code."""
    code = _CATEGORY_NAMES.get(_key(name))
    if code is None:
        raise InvalidInput(
            f"unknown category {quoted(name)}; expected one of {', '.join(CATEGORIES)} or a K-Fashion name"
        )
    return code


def parse_any_category(name: str) -> str:
    """Map any K-Fashion category, indexed or not, to its code: what a 아우터 or 원피스 label may name."""
    code = _ANY_CATEGORY_NAMES.get(_key(name))
    if code is None:
        korean = [k for _, k, _ in _CATEGORIES] + [k for _, k in _UNINDEXED_CATEGORIES]
        raise InvalidInput(f"unknown category {quoted(name)}; expected a K-Fashion category: {', '.join(korean)}")
    return code


def parse_color(name: str) -> str:
    """Map a color code or Korean K-Fashion name to its code."""
    code = _COLOR_NAMES.get(_key(name))
    if code is None:
        raise InvalidInput(f"unknown color {quoted(name)}; expected one of {', '.join(COLORS)} or a K-Fashion name")
    return code


def korean_category(code: str) -> str:
    """The K-Fashion (Korean) name of a category code, for writing labels."""
    return next(korean for c, korean, _ in _CATEGORIES if c == code)


def korean_color(code: str) -> str:
    """The K-Fashion (Korean) name of a color code."""
    return next(korean for c, korean in _COLORS if c == code)


def korean_group(group: Group) -> str:
    """The K-Fashion (Korean) name of a garment group."""
    return next(korean for korean, g in KOREAN_GROUPS.items() if g == group)
