"""Reading K-Fashion label JSON: garment polygons, boxes, categories and colors of 상의 and 하의."""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import numpy as np

from kloset.core.errors import InvalidInput, quoted
from kloset.core.garments.labels import (
    KOREAN_GROUPS,
    UNINDEXED_KOREAN_GROUPS,
    Group,
    parse_any_category,
    parse_category,
    parse_color,
)
from kloset.core.garments.regions import Region, make_box, make_polygon
from kloset.core.limits import InputLimits

_VERTEX_KEY = re.compile(r"^([XY])좌표(\d{1,9})$")  # bounded: int() of a 5,000-digit string raises ValueError
_MAX_SIDE_PX = 2**31 - 1
_DEFAULT_LIMITS = InputLimits()


@dataclass(frozen=True)
class LabeledGarment:
    region: Region
    category: str | None
    color: str | None

    @property
    def group(self) -> Group:
        assert self.region.group is not None
        return self.region.group


@dataclass(frozen=True)
class KFashionLabel:
    file_name: str | None
    width: int | None
    height: int | None
    garments: tuple[LabeledGarment, ...]
    # K-Fashion groups present in the label that kloset does not index (아우터, 원피스).
    unindexed_groups: tuple[str, ...]
    # Their regions, by Korean group name: the segmenter learns them as classes of their own.
    unindexed_regions: dict[str, Region] = field(default_factory=dict)

    @property
    def stem(self) -> str | None:
        return PurePath(self.file_name).stem if self.file_name else None


def parse_label(data: bytes | str | dict[str, Any], limits: InputLimits = _DEFAULT_LIMITS) -> KFashionLabel:
    """Parse one K-Fashion label; raises InvalidInput naming the first problem found.

    The label is checked whole: every group's categories and colors, with a polygon or without, indexed or not;
    polygons and points are counted against `limits` before any is converted."""
    doc = _load_json(data)
    info = _mapping(doc.get("이미지 정보", {}), "이미지 정보")
    dataset = _mapping(doc.get("데이터셋 정보"), "데이터셋 정보")
    details = _mapping(dataset.get("데이터셋 상세설명"), "데이터셋 상세설명")
    polygons = _mapping(details.get("폴리곤좌표", {}), "폴리곤좌표")
    rects = _mapping(details.get("렉트좌표", {}), "렉트좌표")
    labeling = _mapping(details.get("라벨링", {}), "라벨링")
    if not polygons and not rects:
        raise InvalidInput("K-Fashion label has neither 폴리곤좌표 nor 렉트좌표")
    for korean in (*KOREAN_GROUPS, *UNINDEXED_KOREAN_GROUPS):
        _count_shapes(korean, polygons.get(korean), limits)
    labels = {korean: _labels(korean, labeling.get(korean), parse_category) for korean in KOREAN_GROUPS}
    for korean in UNINDEXED_KOREAN_GROUPS:  # never indexed, but a word K-Fashion does not know is still an error
        _labels(korean, labeling.get(korean), parse_any_category)

    garments = []
    for korean, group in KOREAN_GROUPS.items():
        region = _region(group, korean, polygons.get(korean), rects.get(korean))
        if region is None:
            continue
        category, color = labels[korean]
        garments.append(LabeledGarment(region=region, category=category, color=color))
    unindexed_regions = {
        korean: region
        for korean in UNINDEXED_KOREAN_GROUPS
        if (region := _region(None, korean, polygons.get(korean), rects.get(korean))) is not None
    }
    return KFashionLabel(
        file_name=_optional_str(info.get("이미지 파일명"), "이미지 파일명"),
        width=_optional_size(info.get("이미지 너비"), "이미지 너비"),
        height=_optional_size(info.get("이미지 높이"), "이미지 높이"),
        garments=tuple(garments),
        unindexed_groups=tuple(unindexed_regions),
        unindexed_regions=unindexed_regions,
    )


def _load_json(data: bytes | str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(data, dict):
        return data
    # Every way json.loads can fail on hostile bytes ends here: malformed text, arrays or objects nested deeper
    # than the interpreter's recursion limit, and integers longer than Python will convert (sys.int_info).
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"label is not valid UTF-8 JSON: {exc}") from None
    except RecursionError:
        raise InvalidInput("label JSON is nested too deeply to be a K-Fashion label") from None
    except ValueError:
        raise InvalidInput("label JSON has a number with too many digits") from None
    if not isinstance(doc, dict):
        raise InvalidInput("label must be a JSON object in K-Fashion format")
    if "데이터셋 정보" not in doc:
        raise InvalidInput("label is not K-Fashion JSON: it has no '데이터셋 정보' key")
    return doc


def _mapping(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"K-Fashion '{key}' must be an object, got {type(value).__name__}")
    return value


def _entries(value: Any, key: str) -> list[dict[str, Any]]:
    """The non-empty dicts of a group's list; K-Fashion writes an absent group as [{}]."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise InvalidInput(f"K-Fashion '{key}' must be a list of objects")
    return [v for v in value if v]


def _count_shapes(korean: str, polygons: Any, limits: InputLimits) -> None:
    """Check a group's polygon and point counts: each vertex is an X좌표N and a Y좌표N key."""
    entries = _entries(polygons, f"폴리곤좌표.{korean}")
    limits.check_polygons(len(entries), korean)
    for i, entry in enumerate(entries):
        limits.check_points((len(entry) + 1) // 2, f"{korean} polygon {i + 1}")


def _region(group: Group | None, korean: str, polygons: Any, rects: Any) -> Region | None:
    entries = _entries(polygons, f"폴리곤좌표.{korean}")
    shapes = tuple(_polygon(entry, f"{korean} polygon {i + 1}") for i, entry in enumerate(entries))
    boxes = _entries(rects, f"렉트좌표.{korean}")
    box = _box(boxes[0], f"{korean} rect") if boxes else None
    if not shapes and box is None:
        return None
    return Region(group=group, polygons=shapes, box=None if shapes else box)


def _polygon(entry: dict[str, Any], what: str) -> np.ndarray:
    xs: dict[int, float] = {}
    ys: dict[int, float] = {}
    for key, value in entry.items():
        match = _VERTEX_KEY.match(key)
        if match is None:
            raise InvalidInput(f"{what} has an unexpected key {quoted(key)}; expected X좌표N / Y좌표N")
        axis, index = match.group(1), int(match.group(2))
        (xs if axis == "X" else ys)[index] = _number(value, f"{what} {key}")
    if set(xs) != set(ys):
        raise InvalidInput(f"{what} has X and Y coordinates that do not pair up")
    order = sorted(xs)
    if order != list(range(1, len(order) + 1)):
        raise InvalidInput(f"{what} vertex numbers are not 1..{len(order)}")
    return make_polygon([(xs[i], ys[i]) for i in order], what)


def _box(entry: dict[str, Any], what: str):
    try:
        values = [_number(entry[k], f"{what} {k}") for k in ("X좌표", "Y좌표", "가로", "세로")]
    except KeyError as exc:
        raise InvalidInput(f"{what} is missing {exc.args[0]}") from None
    return make_box(*values, what=what)


def _labels(korean: str, value: Any, category_of: Callable[[str], str]) -> tuple[str | None, str | None]:
    """A group's category and color codes (its first entry's), after checking every name of every entry."""
    parsed = [_entry_labels(korean, entry, category_of) for entry in _entries(value, f"라벨링.{korean}")]
    if not parsed:
        return None, None
    return parsed[0]


def _entry_labels(
    korean: str, entry: dict[str, Any], category_of: Callable[[str], str]
) -> tuple[str | None, str | None]:
    """One 라벨링 entry's category and color codes; its 서브색상 is checked, not kept."""
    codes: dict[str, str | None] = {}
    for key, parse in (("카테고리", category_of), ("색상", parse_color), ("서브색상", parse_color)):
        name = entry.get(key)
        if name is not None and not isinstance(name, str):
            raise InvalidInput(f"라벨링.{korean}.{key} must be a string")
        try:
            codes[key] = parse(name) if name else None
        except InvalidInput as exc:  # say where: the same word may be fine in another group
            raise InvalidInput(f"라벨링.{korean}.{key}: {exc}") from None
    return codes["카테고리"], codes["색상"]


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{what} must be a number, got {quoted(value)}")
    try:
        return float(value)
    except OverflowError:  # an integer of hundreds of digits
        raise InvalidInput(f"{what} is too large a number") from None


def _optional_str(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"이미지 정보.{what} must be a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # JSON's "\ud800" escapes decode to text that cannot be stored or sent on
        raise InvalidInput(f"이미지 정보.{what} is not valid Unicode: it has an unpaired surrogate") from None
    return value


def _optional_size(value: Any, what: str) -> int | None:
    if value is None:
        return None
    # The range check also refuses NaN and infinity (JSON's NaN, Infinity), which int() cannot convert.
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= _MAX_SIDE_PX:
        raise InvalidInput(f"이미지 정보.{what} must be a positive number of pixels, got {quoted(value)}")
    return int(value)


def label_document(
    file_name: str,
    width: int,
    height: int,
    garments: dict[str, tuple[list[np.ndarray], str | None, str | None]],
    image_number: int = 0,
) -> dict[str, Any]:
    """Build a K-Fashion label: garments maps a Korean group name to (polygons, Korean category, Korean color)."""
    groups = ("아우터", "하의", "원피스", "상의")
    polygons: dict[str, list[dict[str, float]]] = {g: [{}] for g in groups}
    rects: dict[str, list[dict[str, float]]] = {g: [{}] for g in groups}
    labeling: dict[str, list[dict[str, str]]] = {g: [{}] for g in groups} | {"스타일": [{}]}
    for group, (shapes, category, color) in garments.items():
        polygons[group] = [
            {f"{axis}좌표{i + 1}": float(v) for i, (x, y) in enumerate(shape) for axis, v in (("X", x), ("Y", y))}
            for shape in shapes
        ]
        points = np.concatenate(shapes)
        x0, y0 = np.floor(points.min(axis=0))
        x1, y1 = np.floor(points.max(axis=0))
        rects[group] = [{"X좌표": float(x0), "Y좌표": float(y0), "가로": int(x1 - x0 + 1), "세로": int(y1 - y0 + 1)}]
        labeling[group] = [{k: v for k, v in (("색상", color), ("카테고리", category)) if v}]
    return {
        "이미지 정보": {
            "이미지 식별자": image_number,
            "이미지 높이": height,
            "이미지 파일명": file_name,
            "이미지 너비": width,
        },
        "데이터셋 정보": {
            "파일 생성일자": "2026-11-27 00:00:00",
            "데이터셋 상세설명": {"렉트좌표": rects, "폴리곤좌표": polygons, "라벨링": labeling},
        },
    }
