import io
from pathlib import Path

import numpy as np
from PIL import Image

from kloset.cli import sheet
from kloset.cli.sheet import PAD, TILE, group_color, write_contact_sheet

PHOTO_SIZE = (320, 480)  # width, height: scaled by TILE / 480 into the query tile
PHOTO_COLOR = (90, 160, 90)  # a plain green no group color is near


def _encoded(size: tuple[int, int], color: tuple[int, int, int], fmt: str = "JPEG") -> bytes:
    pixels = np.empty((size[1], size[0], 3), dtype=np.uint8)
    pixels[:] = color
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format=fmt)
    return out.getvalue()


def _garment(group: str, box: dict | None, item_ids: list[str], relaxed: bool = False) -> dict:
    category, color = ("blouse", "white") if group == "top" else ("jeans", "blue")
    return {
        "group": group,
        "category": category,
        "color": color,
        "box": box,
        "policy": "soft",
        "filter": {"category": [category], "color": []},
        "relaxed": relaxed,
        "relaxation": "dropped color" if relaxed else "",
        "top_categories": [{"label": category, "probability": 0.62}, {"label": "shirt", "probability": 0.2}],
        "top_colors": [{"label": color, "probability": 0.71}],
        "results": [
            {"item_id": item_id, "score": 0.93 - 0.1 * i, "category": category, "color": color, "support": i}
            for i, item_id in enumerate(item_ids)
        ],
    }


def _near(pixel: tuple[int, ...], color: tuple[int, int, int], tolerance: int = 8) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, color, strict=True))  # JPEG shifts plain colors a little


def _open(path: Path) -> Image.Image:
    image = Image.open(path)
    assert image.format == "PNG"
    return image.convert("RGB")


TOP_BOX = {"x": 60.0, "y": 30.0, "width": 180.0, "height": 210.0}
BOTTOM_BOX = {"x": 45.0, "y": 240.0, "width": 210.0, "height": 225.0}


def test_two_garments_by_three_results(tmp_path):
    garments = [_garment("top", TOP_BOX, ["0001/top", "0002/top", "0003/top"], relaxed=True),
                _garment("bottom", BOTTOM_BOX, ["0001/bottom", "0004/bottom", "0005/bottom"])]  # fmt: skip
    crops = {g["results"][i]["item_id"]: _encoded((100 + 40 * i, 150), (200, 50 * i, 90)) for g in garments
             for i in range(3)}  # fmt: skip
    path = write_contact_sheet(tmp_path / "out" / "sheet.png", garments, crops, _encoded(PHOTO_SIZE, PHOTO_COLOR), "q")
    assert path == tmp_path / "out" / "sheet.png"
    image = _open(path)
    query_width = round(PHOTO_SIZE[0] * TILE / PHOTO_SIZE[1])
    assert image.width >= max(TILE, query_width) + 3 * TILE
    assert image.height >= 2 * TILE


def test_missing_and_corrupt_crops_give_placeholders(tmp_path):
    garments = [_garment("top", None, ["missing", "empty", "corrupt", "truncated"])]
    good = _encoded((120, 160), (10, 10, 10))
    crops = {"empty": b"", "corrupt": b"\xff\xd8\xff\xe0 certainly not a jpeg", "truncated": good[: len(good) // 3]}
    image = _open(write_contact_sheet(tmp_path / "sheet.png", garments, crops, _encoded(PHOTO_SIZE, PHOTO_COLOR)))
    left = PAD + TILE + sheet.QUERY_GAP  # the query photo scales to 107 px wide, under the TILE-wide query column
    for i in range(4):
        corner = image.getpixel((left + i * (TILE + PAD) + 2, PAD + 2))
        assert corner == sheet.PLACEHOLDER, i


def test_the_box_is_drawn_where_it_says(tmp_path):
    garments = [_garment("top", TOP_BOX, ["0001/top"]), _garment("bottom", BOTTOM_BOX, ["0001/bottom"])]
    path = write_contact_sheet(tmp_path / "sheet.png", garments, {}, _encoded(PHOTO_SIZE, PHOTO_COLOR, "PNG"))
    image = _open(path)
    scale = TILE / PHOTO_SIZE[1]
    row_tops = [PAD, PAD + TILE + sheet.CAPTION_GAP + sheet.RESULT_CAPTION_LINES * sheet.LINE_HEIGHT + 2 * PAD]
    for garment, row_top in zip(garments, row_tops, strict=True):
        box, color = garment["box"], group_color(garment["group"])
        left_edge = PAD + round(box["x"] * scale) + 1
        middle = row_top + round((box["y"] + box["height"] / 2) * scale)
        top_edge = row_top + round(box["y"] * scale) + 1
        centre = PAD + round((box["x"] + box["width"] / 2) * scale)
        assert image.getpixel((left_edge, middle)) == color
        assert image.getpixel((centre, top_edge)) == color
        assert image.getpixel((centre, middle)) == PHOTO_COLOR  # inside the box: the photo, untouched
        assert image.getpixel((left_edge - 4, middle)) == PHOTO_COLOR  # just outside it too
    assert group_color("top") != group_color("bottom")


def test_search_by_item_with_and_without_the_query_crop(tmp_path):
    garments = [_garment("top", None, ["0002/top", "0003/top"])]
    crops = {"query": _encoded((120, 160), (250, 250, 0)), "0002/top": _encoded((120, 160), (0, 0, 250))}
    image = _open(write_contact_sheet(tmp_path / "item.png", garments, crops, title="similar to 0001/top"))
    header = sheet.TITLE_SIZE + PAD + PAD // 2
    assert _near(image.getpixel((PAD + 5, PAD + header + TILE // 2)), (250, 250, 0))  # the query crop comes first
    del crops["query"]
    image = _open(write_contact_sheet(tmp_path / "bare.png", garments, crops))
    assert image.width >= 2 * TILE and image.getpixel((PAD + 5, PAD + TILE // 2)) == sheet.BACKGROUND


def test_long_ids_and_no_results_stay_in_bounds(tmp_path):
    long_id = "a-very-long-catalog-item-identifier-that-cannot-fit/top"
    garments = [_garment("top", None, [long_id]), _garment("bottom", None, [])]
    path = write_contact_sheet(tmp_path / "sheet.png", garments, {}, None)
    assert _open(path).height > 0
    line = sheet._result_caption(1, garments[0]["results"][0], sheet.ImageFont.load_default(size=sheet.FONT_SIZE))[0]
    assert line.endswith(sheet.ELLIPSIS) and sheet.ImageFont.load_default(size=sheet.FONT_SIZE).getlength(line) <= TILE
    assert write_contact_sheet(tmp_path / "empty.png", [], {}).exists()


def test_query_caption():
    caption = sheet._query_caption(_garment("top", TOP_BOX, [], relaxed=True))
    assert " ".join(caption) == "top: blouse 0.62 / white 0.71 (soft) relaxed: dropped color"
    assert " ".join(sheet._query_caption(_garment("bottom", None, []))) == "bottom: jeans 0.62 / blue 0.71 (soft)"
    font = sheet.ImageFont.load_default(size=sheet.FONT_SIZE)
    lines = sheet._wrap(caption, font, TILE)
    assert all(font.getlength(line) <= TILE for line in lines) and len(lines) > 1
    assert any(line.startswith("/ white 0.71") for line in lines)  # wraps between chunks, not inside "white 0.71"


def test_boxes_follow_the_exif_orientation_unless_told_otherwise(tmp_path):
    stored = Image.new("RGB", (PHOTO_SIZE[1], PHOTO_SIZE[0]), PHOTO_COLOR)  # 480 x 320, shown upright as 320 x 480
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turn 90 degrees clockwise to show
    out = io.BytesIO()
    stored.save(out, format="PNG", exif=exif)
    garments = [_garment("top", TOP_BOX, [])]
    upright = _open(write_contact_sheet(tmp_path / "upright.png", garments, {}, out.getvalue()))
    scale = TILE / PHOTO_SIZE[1]
    middle = PAD + round((TOP_BOX["y"] + TOP_BOX["height"] / 2) * scale)
    assert upright.getpixel((PAD + round(TOP_BOX["x"] * scale) + 1, middle)) == group_color("top")
    stored_sheet = _open(write_contact_sheet(tmp_path / "stored.png", garments, {}, out.getvalue(), upright=False))
    scale = min(TILE / PHOTO_SIZE[0], sheet.QUERY_MAX_WIDTH / PHOTO_SIZE[1])  # the stored 480 x 320 photo
    middle = PAD + round((TOP_BOX["y"] + TOP_BOX["height"] / 2) * scale)
    assert stored_sheet.getpixel((PAD + round(TOP_BOX["x"] * scale) + 1, middle)) == group_color("top")
