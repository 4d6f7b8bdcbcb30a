"""AttributeEngine's limits: how many garments a request may name, and how many the model sees at once."""

import numpy as np
import pytest

from kloset.core.classifier import AttributeEngine
from kloset.core.errors import InvalidInput
from kloset.core.garments.crop import crop_garment
from kloset.core.garments.images import decode_image, encode_jpeg
from kloset.core.garments.regions import Region, make_box
from kloset.core.models.attributes import AttributeModel


class RecordingForward:
    """Stands in for the model's compiled forward pass: passes every call on, records how many images and stats."""

    def __init__(self, forward) -> None:
        self._forward = forward
        self.calls: list[tuple[int, int]] = []

    def __call__(self, image, color_stats):
        self.calls.append((len(image), len(color_stats)))
        return self._forward(image=image, color_stats=color_stats)


@pytest.fixture(scope="module")
def loaded(tiny_model_dir) -> AttributeModel:
    return AttributeModel.load(tiny_model_dir, batch_size=3)


def photo() -> bytes:
    rng = np.random.default_rng(7)
    return encode_jpeg(rng.integers(0, 255, (120, 90, 3), dtype=np.uint8))


def boxes(n: int) -> list[Region]:
    return [Region(box=make_box(2 + i, 3 + 2 * i, 30 + i, 40 + 3 * i)) for i in range(n)]


def test_a_request_over_the_garment_limit_is_refused_before_anything_is_decoded(loaded):
    engine = AttributeEngine(loaded, max_pixels=1_000_000, max_garments=4)
    # The image is not even an image: the count is checked first, so the limit is what the caller hears about.
    with pytest.raises(InvalidInput, match=r"at most 4 garments \(KLOSET_MAX_GARMENTS_PER_REQUEST\); this one names 5"):
        engine.classify(b"not an image", boxes(5))
    assert len(engine.classify(photo(), boxes(4)).garments) == 4
    assert engine.max_garments == 4


def test_the_limit_must_allow_one_garment(loaded):
    with pytest.raises(ValueError, match="at least 1"):
        AttributeEngine(loaded, max_pixels=1_000_000, max_garments=0)


def test_the_model_is_never_handed_more_than_its_batch_size(loaded, monkeypatch):
    network = RecordingForward(loaded._forward)
    monkeypatch.setattr(loaded, "_forward", network)
    engine = AttributeEngine(loaded, max_pixels=1_000_000, max_garments=16)
    regions = boxes(7)
    batched = engine.classify(photo(), regions).garments

    # Each garment goes in once (one view, the default), with its color statistics.
    assert [images for images, _ in network.calls] == [3, 3, 1]
    assert all(images == stats for images, stats in network.calls)

    one_at_a_time = AttributeModel(loaded.info, loaded._network, batch_size=1)
    pixels = decode_image(photo(), 1_000_000)
    for region, garment in zip(regions, batched, strict=True):
        [alone] = one_at_a_time.predict([crop_garment(pixels, region, loaded.input_size)], [None])
        assert alone.group == garment.group
        np.testing.assert_allclose(alone.embedding, garment.embedding, atol=1e-5)
        for name in alone.category_probabilities:
            assert alone.category_probabilities[name] == pytest.approx(garment.category_probabilities[name], abs=1e-5)
        for name in alone.color_probabilities:
            assert alone.color_probabilities[name] == pytest.approx(garment.color_probabilities[name], abs=1e-5)
    assert max(images for images, _ in network.calls) <= 2 * loaded.batch_size
