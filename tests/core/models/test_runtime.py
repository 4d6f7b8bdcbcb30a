"""Both runtimes run the same networks to the same answers; TFLite conversions are cached by content."""

import numpy as np
import pytest

from kloset.core.garments.crop import crop_garment
from kloset.core.garments.images import decode_image
from kloset.core.garments.labels import Group
from kloset.core.garments.regions import Region, make_polygon
from kloset.core.models import lite
from kloset.core.models.attributes import AttributeModel
from kloset.core.models.runtime import ModelRuntime, RunOptions
from kloset.core.models.segmenter import Segmenter
from tests.conftest import TINY_INPUT_SIZE

TOP = Region(group=Group.TOP, polygons=(make_polygon([(20, 10), (69, 10), (69, 59), (20, 59)]),))


def crops(sample_catalog, n: int = 4):
    images = sorted((sample_catalog / "images").glob("*.jpg"))[:n]
    return [crop_garment(decode_image(p.read_bytes(), 10**7), TOP, TINY_INPUT_SIZE) for p in images]


@pytest.fixture(scope="module")
def graph_model(tiny_model_dir) -> AttributeModel:
    return AttributeModel.load(tiny_model_dir, runtime=RunOptions(ModelRuntime.TF_GRAPH))


def test_tflite_and_the_tensorflow_graph_give_the_same_predictions(tiny_model_dir, graph_model, sample_catalog):
    lite_model = AttributeModel.load(tiny_model_dir, runtime=RunOptions(ModelRuntime.TFLITE))
    garments = crops(sample_catalog)
    ours = lite_model.predict(garments, [None] * len(garments))
    theirs = graph_model.predict(garments, [None] * len(garments))
    for a, b in zip(ours, theirs, strict=True):
        assert float(a.embedding @ b.embedding) > 0.9999
        assert a.category == b.category and a.color == b.color
        np.testing.assert_allclose(list(a.category_probabilities.values()), list(b.category_probabilities.values()),
                                   atol=1e-4)  # fmt: skip
    assert lite_model.version == graph_model.version  # same embeddings: a catalog needs no reindex to switch


@pytest.mark.parametrize("runtime", list(ModelRuntime))
def test_a_featureless_crop_gets_a_unit_embedding_on_every_runtime(tiny_model_dir, runtime):
    """A flat gray patch pools to all-zero features in the tiny model; TFLite's L2 normalisation made that NaN
    (a search by it was refused by Qdrant, found by the retrieval benchmark's known-answer folder)."""
    model = AttributeModel.load(tiny_model_dir, runtime=RunOptions(runtime))
    flat = decode_image(_gray_jpeg(), 10**7)
    [prediction] = model.predict([crop_garment(flat, TOP, TINY_INPUT_SIZE)], [Group.TOP])
    assert np.all(np.isfinite(prediction.embedding))
    assert float(np.linalg.norm(prediction.embedding)) == pytest.approx(1.0, abs=1e-5)


def _gray_jpeg() -> bytes:
    from kloset.core.garments.images import encode_jpeg

    return encode_jpeg(np.full((96, 96, 3), 130, np.uint8), quality=95)


def test_the_segmenter_gives_the_same_probabilities_on_both_runtimes(tiny_segmenter_dir, sample_catalog):
    pixels = decode_image((sample_catalog / "images" / "0001.jpg").read_bytes(), 10**7)
    on = {rt: Segmenter.load(tiny_segmenter_dir, runtime=RunOptions(rt)).probabilities(pixels) for rt in ModelRuntime}
    np.testing.assert_allclose(on[ModelRuntime.TFLITE], on[ModelRuntime.TF_GRAPH], atol=1e-4)


def test_a_conversion_is_kept_by_content_and_read_back(tiny_model_dir, tmp_path, monkeypatch):
    options = RunOptions(ModelRuntime.TFLITE, cache_dir=tmp_path)
    AttributeModel.load(tiny_model_dir, runtime=options)
    [kept] = tmp_path.glob("*.tflite")
    assert kept.stat().st_size > 0 and not list(tmp_path.glob("*.part"))
    assert kept.stat().st_mode & 0o044 == 0o044  # other users (the container's) can read it

    monkeypatch.setattr(lite, "_converted", {})  # a new process: only the folder remembers
    monkeypatch.setattr(lite, "convert", lambda network: pytest.fail("converted again instead of reading the cache"))
    again = AttributeModel.load(tiny_model_dir, runtime=options)
    assert again.predict(crops_of_blank(), [None])[0].embedding.shape == (1280,)


def test_other_weights_never_meet_an_old_conversion(tiny_model_dir, graph_model):
    before = lite.network_digest(graph_model._network)
    layer = graph_model._network.get_layer("heads").get_layer("category")
    kernel, bias = layer.get_weights()
    try:
        layer.set_weights([kernel, bias + 1.0])
        assert lite.network_digest(graph_model._network) != before
    finally:
        layer.set_weights([kernel, bias])


def test_an_unwritable_cache_only_costs_the_conversion(tiny_model_dir, tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    lite._converted.clear()
    model = AttributeModel.load(tiny_model_dir, runtime=RunOptions(ModelRuntime.TFLITE, cache_dir=blocked / "x"))
    assert model.predict(crops_of_blank(), [None])[0].embedding.shape == (1280,)


def test_the_mirror_view_doubles_the_images_per_garment_and_changes_the_version(tiny_model_dir, graph_model):
    mirrored = AttributeModel.load(tiny_model_dir, runtime=RunOptions(ModelRuntime.TF_GRAPH), mirror=True)
    assert mirrored.views == 2 and graph_model.views == 1
    assert mirrored.version.endswith("+mirror-avg") and graph_model.version.endswith("+single-view")
    seen = []
    forward = mirrored._forward
    mirrored._forward = lambda **inputs: seen.append(len(inputs["image"])) or forward(**inputs)
    [garment] = mirrored.predict(crops_of_blank(), [None])
    assert seen == [2]
    # A symmetric crop is its own mirror image: the two views agree with the single one.
    [single] = graph_model.predict(crops_of_blank(), [None])
    np.testing.assert_allclose(garment.embedding, single.embedding, atol=1e-5)


def crops_of_blank():
    pixels = np.full((80, 80, 3), 128, dtype=np.uint8)
    return [crop_garment(pixels, TOP, TINY_INPUT_SIZE)]
