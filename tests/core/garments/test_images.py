import io

import numpy as np
import pytest
from PIL import Image

from kloset.core.errors import InvalidInput
from kloset.core.garments.images import decode_image, encode_jpeg, image_size

LIMIT = 40_000_000


def jpeg(width=40, height=30) -> bytes:
    return encode_jpeg(np.full((height, width, 3), 200, dtype=np.uint8))


def test_decodes_rgb_array():
    pixels = decode_image(jpeg(), LIMIT)
    assert pixels.shape == (30, 40, 3)
    assert pixels.dtype == np.uint8


def test_grayscale_and_alpha_become_rgb():
    out = io.BytesIO()
    Image.new("RGBA", (5, 4), (10, 20, 30, 0)).save(out, format="PNG")
    assert decode_image(out.getvalue(), LIMIT).shape == (4, 5, 3)


def test_zero_bytes():
    with pytest.raises(InvalidInput, match="empty"):
        decode_image(b"", LIMIT)


def test_not_an_image():
    with pytest.raises(InvalidInput, match="not an image"):
        decode_image(b"%PDF-1.4 definitely not a photo", LIMIT)


def test_truncated_jpeg():
    data = encode_jpeg(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8))
    with pytest.raises(InvalidInput, match="corrupt or truncated"):
        decode_image(data[: len(data) // 2], LIMIT)


def test_decompression_bomb_is_refused_before_decoding():
    out = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(out, format="PNG")  # 400 Mpx that compress to a few KB
    assert len(out.getvalue()) < 200_000
    with pytest.raises(InvalidInput, match="20000x20000 pixels, over the limit"):
        decode_image(out.getvalue(), LIMIT)


def test_image_size_reads_the_header_with_the_same_checks():
    from kloset.core.garments.images import image_size

    assert image_size(jpeg(40, 30), LIMIT) == (40, 30)
    out = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(out, format="PNG")
    with pytest.raises(InvalidInput, match="over the limit"):
        image_size(out.getvalue(), LIMIT)
    with pytest.raises(InvalidInput, match="empty"):
        image_size(b"", LIMIT)
    with pytest.raises(InvalidInput, match="not an image"):
        image_size(b"nope", LIMIT)


def test_formats_other_than_photos_are_not_read():
    """Pillow opens some forty formats; an ICO whose directory says 16x16 would decode the 20000x20000 PNG inside."""
    import struct

    out = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(out, format="PNG")
    png = out.getvalue()
    ico = struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", 16, 16, 0, 0, 1, 32, len(png), 22) + png
    for data in (ico, _saved("GIF"), _saved("TIFF"), _saved("PPM")):
        with pytest.raises(InvalidInput, match="image format kloset cannot read"):
            decode_image(data, LIMIT)
        with pytest.raises(InvalidInput, match="image format kloset cannot read"):
            image_size(data, LIMIT)
    for fmt in ("JPEG", "PNG", "WEBP", "BMP"):
        assert decode_image(_saved(fmt), LIMIT).shape == (6, 8, 3)


def _saved(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 10, 10)).save(out, format=fmt)
    return out.getvalue()


@pytest.mark.parametrize("cut", [30, 60, 100, 200, 400])
def test_damaged_headers_are_invalid_input_whatever_the_reader_raises(cut):
    """Readers of malformed files raise OSError, struct.error, IndexError, ...: every one is InvalidInput."""
    rng = np.random.default_rng(cut)
    for fmt in ("JPEG", "PNG", "WEBP", "BMP"):
        data = bytearray(_saved(fmt))
        for _ in range(20):
            damaged = bytes(data)
            position = int(rng.integers(8, min(cut, len(data))))
            damaged = damaged[:position] + bytes(rng.integers(0, 256, 4, dtype=np.uint8)) + damaged[position + 4 :]
            try:
                decode_image(damaged, LIMIT)
            except InvalidInput as exc:
                assert len(str(exc)) < 400
