"""Contact sheets for `kloset search --sheet` and `kloset outfit --sheet`: the query and its results as one PNG.

One row per query garment: first the query photo (scaled to the row height, the garment's box drawn on it) with the
garment's predicted category and color, then each result's catalog crop with its rank, id, score and labels.
"""

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from kloset.core.errors import InvalidInput
from kloset.core.garments.images import decode_image
from kloset.core.limits import InputLimits

TILE = 160  # a result tile's side, and the height of every image in a row
PAD = 8  # margin around the sheet and gap between tiles
QUERY_GAP = 3 * PAD  # between the query column and the first result
CAPTION_GAP = 4  # between a tile and its caption
FONT_SIZE = 13
TITLE_SIZE = 16
LINE_HEIGHT = 17
RESULT_CAPTION_LINES = 3
QUERY_MAX_WIDTH = 2 * TILE  # a wide query photo is scaled down to this width instead of to the row height
MAX_PIXELS = InputLimits.max_pixels  # the services' default limit; a sheet never needs more
QUERY_CROP_KEY = "query"  # crops[QUERY_CROP_KEY]: the query item's crop, when searching by a catalog item

BACKGROUND = (255, 255, 255)
TILE_BACKGROUND = (235, 235, 235)
PLACEHOLDER = (200, 200, 200)
PLACEHOLDER_TEXT = (100, 100, 100)
TEXT = (30, 30, 30)
MUTED_TEXT = (100, 100, 100)
ROW_RULE = (210, 210, 210)
GROUP_COLORS: dict[str, tuple[int, int, int]] = {"top": (230, 30, 70), "bottom": (20, 110, 235)}
OTHER_GROUP_COLOR = (245, 150, 0)
BOX_LINE_WIDTH = 3
ELLIPSIS = "…"

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@dataclass(frozen=True)
class _Row:
    garment: dict
    query_tile: Image.Image | None
    caption: list[str]

    @property
    def height(self) -> int:
        """The tiles, then the taller of the result captions and the query's caption."""
        lines = max(RESULT_CAPTION_LINES, len(self.caption))
        return (TILE + CAPTION_GAP if self.query_tile is not None or self.results else 0) + lines * LINE_HEIGHT

    @property
    def results(self) -> list[dict]:
        return self.garment.get("results") or []


def group_color(group: str) -> tuple[int, int, int]:
    """The RGB color a garment group's box is drawn in."""
    return GROUP_COLORS.get(group, OTHER_GROUP_COLOR)


def write_contact_sheet(
    path: Path,
    garments: list[dict],
    crops: dict[str, bytes],
    query_image: bytes | None = None,
    title: str = "",
    *,
    upright: bool = True,
) -> Path:
    """Render the query garments and their results as a PNG contact sheet at path and return path.

    upright: the boxes refer to the photo turned by its EXIF orientation, as the classifier reads a photo sent without
    regions; pass False when the search sent --label / --box regions, which refer to the stored pixels.
    """
    font = ImageFont.load_default(size=FONT_SIZE)
    title_font = ImageFont.load_default(size=TITLE_SIZE)
    photo = _decode(query_image, upright) if query_image is not None else None
    tiles = [_query_tile(g, photo, crops.get(QUERY_CROP_KEY) if i == 0 else None) for i, g in enumerate(garments)]
    query_width = max([TILE, *(t.width for t in tiles if t is not None)])
    rows = [_Row(g, t, _wrap(_query_caption(g), font, query_width)) for g, t in zip(garments, tiles, strict=True)]
    columns = max([2, *(len(r.results) for r in rows)])

    width = PAD + query_width + QUERY_GAP + columns * (TILE + PAD)
    header = TITLE_SIZE + PAD + PAD // 2 if title else 0
    body = sum(r.height for r in rows) + 2 * PAD * max(len(rows) - 1, 0) if rows else LINE_HEIGHT
    sheet = Image.new("RGB", (width, PAD + header + body + PAD), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((PAD, PAD), _fit(title, title_font, width - 2 * PAD), fill=TEXT, font=title_font)
    top = PAD + header
    if not rows:
        draw.text((PAD, top), "no garments", fill=MUTED_TEXT, font=font)
    for index, row in enumerate(rows):
        if index:
            draw.line([(PAD, top - PAD), (width - PAD, top - PAD)], fill=ROW_RULE)
        _draw_row(sheet, draw, font, row, crops, PAD + query_width + QUERY_GAP, top)
        top += row.height + 2 * PAD

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, format="PNG")
    return path


def _draw_row(
    sheet: Image.Image, draw: ImageDraw.ImageDraw, font: Font, row: _Row, crops: dict[str, bytes], left: int, top: int
) -> None:
    """Draw one query garment's row with its top edge at y = top and its first result at x = left."""
    caption_top = top
    if row.query_tile is not None:
        sheet.paste(row.query_tile, (PAD, top))
        frame = [PAD - 1, top - 1, PAD + row.query_tile.width, top + row.query_tile.height]
        draw.rectangle(frame, outline=ROW_RULE)  # a white photo would otherwise melt into the sheet
        caption_top += TILE + CAPTION_GAP
    _draw_lines(draw, font, row.caption, PAD, caption_top, TEXT)
    if not row.results:
        draw.text((left, top), "no results", fill=MUTED_TEXT, font=font)
    for rank, hit in enumerate(row.results, start=1):
        x = left + (rank - 1) * (TILE + PAD)
        sheet.paste(_result_tile(crops.get(str(hit.get("item_id", ""))), font), (x, top))
        _draw_lines(draw, font, _result_caption(rank, hit, font), x, top + TILE + CAPTION_GAP, TEXT)


def _decode(data: bytes | None, upright: bool = False) -> Image.Image | None:
    """Decode image bytes into an RGB image (turned by its EXIF orientation if upright); None when not decodable."""
    if not data:
        return None
    try:
        return Image.fromarray(decode_image(data, MAX_PIXELS, apply_exif_orientation=upright))
    except InvalidInput:
        return None


def _query_tile(garment: dict, photo: Image.Image | None, query_crop: bytes | None) -> Image.Image | None:
    """The query photo scaled to the row height with the garment's box on it, else the query item's crop, else None."""
    if photo is not None:
        tile, scale = _scale_to_row(photo)
        _draw_box(tile, garment.get("box"), scale, group_color(str(garment.get("group", ""))))
        return tile
    crop = _decode(query_crop)
    return _scale_to_row(crop)[0] if crop is not None else None


def _scale_to_row(image: Image.Image) -> tuple[Image.Image, float]:
    """The image scaled to TILE high (or QUERY_MAX_WIDTH wide when wider), and the scale used."""
    scale = min(TILE / image.height, QUERY_MAX_WIDTH / image.width)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS), scale


def _draw_box(tile: Image.Image, box: dict | None, scale: float, color: tuple[int, int, int]) -> None:
    """Draw a box given in the photo's pixels onto the scaled tile; no box means the whole photo, drawn as nothing."""
    if not box:
        return
    x0, y0 = box["x"] * scale, box["y"] * scale
    x1, y1 = (box["x"] + box["width"]) * scale - 1, (box["y"] + box["height"]) * scale - 1
    x0, x1 = sorted((min(max(x0, 0), tile.width - 1), min(max(x1, 0), tile.width - 1)))
    y0, y1 = sorted((min(max(y0, 0), tile.height - 1), min(max(y1, 0), tile.height - 1)))
    ImageDraw.Draw(tile).rectangle([round(x0), round(y0), round(x1), round(y1)], outline=color, width=BOX_LINE_WIDTH)


def _result_tile(data: bytes | None, font: Font) -> Image.Image:
    """A TILE x TILE tile: the crop fitted inside on light gray, or a gray "no image" placeholder."""
    crop = _decode(data)
    if crop is None:
        tile = Image.new("RGB", (TILE, TILE), PLACEHOLDER)
        ImageDraw.Draw(tile).text((TILE / 2, TILE / 2), "no image", fill=PLACEHOLDER_TEXT, font=font, anchor="mm")
        return tile
    tile = Image.new("RGB", (TILE, TILE), TILE_BACKGROUND)
    scale = min(TILE / crop.width, TILE / crop.height)
    size = (max(1, round(crop.width * scale)), max(1, round(crop.height * scale)))
    fitted = crop.resize(size, Image.Resampling.LANCZOS)
    tile.paste(fitted, ((TILE - fitted.width) // 2, (TILE - fitted.height) // 2))
    return tile


def _probability(scores: list[dict] | None, label: str) -> str:
    """' 0.62' for label's probability among the top scores, '' when it is not among them."""
    for score in scores or []:
        if score.get("label") == label and score.get("probability") is not None:
            return f" {float(score['probability']):.2f}"
    return ""


def _query_caption(garment: dict) -> list[str]:
    """'top: blouse 0.62 / white 0.71 (soft)' (+ ' relaxed: <relaxation>'), in the chunks it may wrap between."""
    category, color = str(garment.get("category", "")), str(garment.get("color", ""))
    chunks = [
        f"{garment.get('group', '')}: {category}{_probability(garment.get('top_categories'), category)}",
        f"/ {color}{_probability(garment.get('top_colors'), color)}",
    ]
    if garment.get("policy"):
        chunks.append(f"({garment['policy']})")
    if garment.get("relaxed"):
        chunks.append(f"relaxed: {garment.get('relaxation', '')}".rstrip())
    return chunks


def _result_caption(rank: int, hit: dict, font: Font) -> list[str]:
    """Rank and id; score (and support when any); category and color: each fitted to the tile's width."""
    score = f"score {float(hit.get('score', 0.0)):.3f}"
    if int(hit.get("support") or 0) > 0:
        score += f"  support {int(hit['support'])}"
    lines = [f"{rank}. {hit.get('item_id', '')}", score, f"{hit.get('category', '')}, {hit.get('color', '')}"]
    return [_fit(line, font, TILE) for line in lines]


def _draw_lines(
    draw: ImageDraw.ImageDraw, font: Font, lines: list[str], x: int, y: int, fill: tuple[int, int, int]
) -> None:
    """Draw lines of text one below the other from (x, y)."""
    for i, line in enumerate(lines):
        draw.text((x, y + i * LINE_HEIGHT), line, fill=fill, font=font)


def _fit(text: str, font: Font, width: float) -> str:
    """The text, cut with an ellipsis where it would be wider than width."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + ELLIPSIS) > width:
        text = text[:-1]
    return text + ELLIPSIS


def _wrap(chunks: list[str], font: Font, width: float) -> list[str]:
    """Lay chunks out in lines no wider than width, breaking inside a chunk only where it cannot fit on a line."""
    lines: list[str] = []
    for chunk in chunks:
        pieces = [chunk] if font.getlength(chunk) <= width else chunk.split()
        for piece in pieces:
            if lines and font.getlength(f"{lines[-1]} {piece}") <= width:
                lines[-1] = f"{lines[-1]} {piece}"
            else:
                lines.append(_fit(piece, font, width))
    return lines
