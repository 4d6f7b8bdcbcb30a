import io

import numpy as np
import pytest
from PIL import Image

from kloset.core.errors import InvalidInput
from kloset.core.garments.images import decode_image, encode_jpeg

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
