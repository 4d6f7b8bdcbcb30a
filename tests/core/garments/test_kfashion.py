import csv
import json

import numpy as np
import pytest

from kloset.core.errors import InvalidInput
from kloset.core.garments.crop import garment_mask
from kloset.core.garments.kfashion import label_document, parse_label
from kloset.core.garments.labels import Group
from kloset.core.limits import InputLimits

TRIANGLE = np.array([[10.0, 10.0], [50.0, 10.0], [30.0, 40.0]])
SQUARE = np.array([[60.0, 50.0], [90.0, 50.0], [90.0, 90.0], [60.0, 90.0]])


def doc(**garments):
    return label_document("x.jpg", 100, 120, garments or {"상의": ([TRIANGLE], "블라우스", "화이트")})


def test_parses_groups_polygons_and_korean_labels():
    label = parse_label(
        json.dumps(doc(상의=([TRIANGLE, SQUARE], "블라우스", "화이트"), 하의=([SQUARE], "청바지", "네이비")))
    )
    assert (label.file_name, label.width, label.height, label.stem) == ("x.jpg", 100, 120, "x")
    top, bottom = label.garments
    assert (top.group, top.category, top.color) == (Group.TOP, "blouse", "white")
    assert len(top.region.polygons) == 2
    np.testing.assert_array_equal(top.region.polygons[0], TRIANGLE)
    assert (bottom.group, bottom.category, bottom.color) == (Group.BOTTOM, "jeans", "navy")


def test_outer_and_one_piece_only_has_no_garments_to_index():
    label = parse_label(json.dumps(doc(원피스=([SQUARE], "드레스", "블랙"), 아우터=([TRIANGLE], "코트", "블랙"))))
    assert label.garments == ()
    assert set(label.unindexed_groups) == {"아우터", "원피스"}


def test_rect_is_used_when_a_group_has_no_polygon():
    d = doc()
    details = d["데이터셋 정보"]["데이터셋 상세설명"]
    details["폴리곤좌표"]["상의"] = [{}]
    label = parse_label(d)
    assert label.garments[0].region.box is not None


def test_missing_labels_leave_category_and_color_to_the_model():
    d = doc()
    d["데이터셋 정보"]["데이터셋 상세설명"]["라벨링"]["상의"] = [{}]
    garment = parse_label(d).garments[0]
    assert garment.category is None and garment.color is None


def _with_polygon(entry):
    d = doc()
    d["데이터셋 정보"]["데이터셋 상세설명"]["폴리곤좌표"]["상의"] = [entry]
    return json.dumps(d)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xfe not json", "not valid UTF-8 JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"images": []}', "no '데이터셋 정보'"),
        (json.dumps({"데이터셋 정보": []}), "'데이터셋 정보' must be an object"),
        (_with_polygon({"X좌표1": 1.0, "Y좌표1": 1.0, "X좌표2": 5.0, "Y좌표2": 5.0}), "at least 3"),
        (_with_polygon({"X좌표1": "1", "Y좌표1": 1.0}), "must be a number"),
        (_with_polygon({"X좌표1": 1.0, "Y좌표1": 1.0, "X좌표2": 5.0}), "do not pair up"),
        (_with_polygon({"x": 1.0}), "unexpected key"),
        (
            _with_polygon(
                {"X좌표1": 1.0, "Y좌표1": 1.0, "X좌표2": 5.0, "Y좌표2": float("nan"), "X좌표3": 9, "Y좌표3": 9}
            ),
            "NaN",
        ),
    ],
)
def test_bad_labels_name_their_problem(data, message):
    with pytest.raises(InvalidInput, match=message):
        parse_label(data)


def test_unknown_category_and_color_names():
    with pytest.raises(InvalidInput, match="unknown category '턱시도'"):
        parse_label(json.dumps(doc(상의=([TRIANGLE], "턱시도", "화이트"))))
    with pytest.raises(InvalidInput, match="unknown color '마젠타'"):
        parse_label(json.dumps(doc(상의=([TRIANGLE], "블라우스", "마젠타"))))


def test_ccp_photo_0001_as_checked_by_hand(ccp_dir):
    label = parse_label((ccp_dir / "labels" / "0001.json").read_bytes())
    top, bottom = label.garments
    assert (top.category, top.color, len(top.region.polygons)) == ("blouse", "white", 3)
    assert (bottom.category, bottom.color, len(bottom.region.polygons)) == ("skirt", "black", 1)
    np.testing.assert_array_equal(top.region.polygons[0][:2], [[276, 140], [279, 144]])
    np.testing.assert_array_equal(bottom.region.polygons[0][:2], [[248, 329], [246, 331]])
    assert label.unindexed_groups == ("아우터",)
    mask = garment_mask(label.height, label.width, bottom.region)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    assert (cols[0], rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1) == (246, 329, 91, 146)  # 렉트좌표


def test_ccp_masks_match_rects_and_pixel_counts(ccp_dir):
    """Rasterised polygons reproduce each garment's rect (±1 px) and kept pixel count (±12 %)."""
    kept = {
        (row["image_id"], row["group"]): int(row["kept_px"])
        for row in csv.DictReader((ccp_dir / "manifest.csv").open(encoding="utf-8"))
    }
    checked = 0
    for path in sorted((ccp_dir / "labels").glob("*.json"))[:60]:
        raw = json.loads(path.read_text(encoding="utf-8"))
        rects = raw["데이터셋 정보"]["데이터셋 상세설명"]["렉트좌표"]
        label = parse_label(raw)
        for garment in label.garments:
            korean = "상의" if garment.group is Group.TOP else "하의"
            mask = garment_mask(label.height, label.width, garment.region)
            rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            rect = rects[korean][0]
            assert abs(cols[0] - rect["X좌표"]) <= 1 and abs(rows[0] - rect["Y좌표"]) <= 1
            assert abs((cols[-1] - cols[0] + 1) - rect["가로"]) <= 2
            assert abs(mask.sum() / kept[(path.stem, korean)] - 1) < 0.12
            checked += 1
    assert checked > 50


def _with_info(**info):
    d = doc()
    d["이미지 정보"].update(info)
    return json.dumps(d)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("[" * 100_000, "nested too deeply"),
        ('{"데이터셋 정보": ' * 100_000, "nested too deeply"),
        ('{"데이터셋 정보": ' + "1" * 5_000 + "}", "number with too many digits"),
        (_with_polygon({"X좌표1": 10**400, "Y좌표1": 1.0}), "too large a number"),
        (_with_polygon({"X좌표" + "1" * 5_000: 1.0}), r"unexpected key 'X좌표1111.*… \(5003 characters\)"),
        (_with_polygon({"X좌표1": [[1]] * 1_000, "Y좌표1": 1.0}), r"got \[\[1\], \[1\].*… \(5000 characters\)"),
        (_with_info(**{"이미지 너비": 10**30}), "positive number of pixels"),
        (_with_info(**{"이미지 높이": -3}), "positive number of pixels, got -3"),
        (_with_info(**{"이미지 파일명": "\ud800.jpg"}), "unpaired surrogate"),
    ],
)
def test_hostile_labels_are_invalid_input_with_short_messages(data, message):
    with pytest.raises(InvalidInput, match=message) as info:
        parse_label(data)
    assert len(str(info.value)) < 300


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_image_sizes_are_refused(value):
    text = _with_info(**{"이미지 너비": value})  # json.dumps writes NaN, Infinity, -Infinity, which json.loads reads
    assert "NaN" in text or "Infinity" in text
    with pytest.raises(InvalidInput, match="positive number of pixels"):
        parse_label(text)


def _labeling(d, group: str, **names):
    d["데이터셋 정보"]["데이터셋 상세설명"]["라벨링"][group] = [names]
    return json.dumps(d)


def test_every_category_and_color_is_checked_also_where_nothing_is_indexed():
    """An unknown word anywhere is an error saying where, even on a group without a polygon or one never indexed."""
    cases = [
        (_labeling(doc(), "하의", 카테고리="턱시도"), r"^라벨링\.하의\.카테고리: unknown category '턱시도'"),
        (_labeling(doc(), "아우터", 카테고리="코트", 색상="마젠타"), r"^라벨링\.아우터\.색상: unknown color '마젠타'"),
        (_labeling(doc(), "원피스", 카테고리="망토"), r"^라벨링\.원피스\.카테고리: unknown category '망토'"),
        (_labeling(doc(), "상의", 카테고리="블라우스", 서브색상="마젠타"), r"^라벨링\.상의\.서브색상: unknown color"),
        (_labeling(doc(), "아우터", 카테고리=7), r"^라벨링\.아우터\.카테고리 must be a string"),
    ]
    for data, message in cases:
        with pytest.raises(InvalidInput, match=message):
            parse_label(data)
    d = doc()
    d["데이터셋 정보"]["데이터셋 상세설명"]["라벨링"]["상의"] = [{"카테고리": "블라우스"}, {"색상": "마젠타"}]
    with pytest.raises(InvalidInput, match=r"^라벨링\.상의\.색상: unknown color '마젠타'"):
        parse_label(d)


@pytest.mark.parametrize("category", ["코트", "재킷", "점퍼", "패딩", "베스트", "가디건", "짚업", "드레스", "점프수트"])
def test_outer_and_one_piece_take_the_whole_k_fashion_vocabulary(category):
    label = parse_label(doc(아우터=([SQUARE], category, "블랙"), 원피스=([SQUARE], category, "화이트")))
    assert label.unindexed_groups == ("아우터", "원피스")
    assert parse_label(_labeling(doc(), "아우터", 카테고리=category, 색상="카키", 서브색상="브라운")).garments


def test_polygons_and_points_are_limited_per_garment_and_per_polygon():
    limits = InputLimits(max_polygons=2, max_points=4)
    assert len(parse_label(doc(상의=([TRIANGLE, SQUARE], "탑", "블랙")), limits).garments[0].region.polygons) == 2
    with pytest.raises(InvalidInput, match=r"^상의 has 3 polygons; .* at most 2 \(KLOSET_MAX_POLYGONS_PER_GARMENT\)"):
        parse_label(doc(상의=([TRIANGLE, SQUARE, TRIANGLE], "탑", "블랙")), limits)
    pentagon = np.array([[10.0, 10.0], [50.0, 10.0], [60.0, 30.0], [30.0, 50.0], [5.0, 30.0]])
    with pytest.raises(InvalidInput, match=r"^원피스 polygon 2 has 5 points; .* 4 \(KLOSET_MAX_POINTS_PER_POLYGON\)"):
        parse_label(doc(상의=([TRIANGLE], "탑", "블랙"), 원피스=([SQUARE, pentagon], "드레스", "블랙")), limits)


def test_shapes_are_counted_before_any_vertex_is_converted():
    # 20,000 vertices that are not even numbers: the count is what the caller hears about, in microseconds.
    entry = {f"{axis}좌표{i}": "x" for i in range(1, 20_001) for axis in "XY"}
    with pytest.raises(InvalidInput, match=r"상의 polygon 1 has 20000 points; .* at most 10000"):
        parse_label(_with_polygon(entry))
    d = doc()
    d["데이터셋 정보"]["데이터셋 상세설명"]["폴리곤좌표"]["아우터"] = [{"X좌표1": "x"}] * 65
    with pytest.raises(InvalidInput, match=r"^아우터 has 65 polygons"):
        parse_label(d)


def test_every_ccp_label_parses_within_the_default_limits(ccp_dir):
    paths = sorted((ccp_dir / "labels").glob("*.json"))
    labels = [parse_label(path.read_bytes(), InputLimits()) for path in paths]
    assert len(labels) == len(paths) > 800
    assert sum(len(label.unindexed_groups) for label in labels) > 500  # outer and one-piece labels among them
