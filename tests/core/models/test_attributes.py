import json
import shutil

import numpy as np
import pytest

from kloset.core.classifier import AttributeEngine
from kloset.core.errors import InvalidInput, ModelError
from kloset.core.garments.crop import crop_garment
from kloset.core.garments.images import encode_jpeg
from kloset.core.garments.labels import CATEGORY_GROUP, Group
from kloset.core.garments.regions import Region, make_polygon
from kloset.core.models.attributes import HEADS_FILE, INFO_FILE, AttributeModel
from kloset.core.models.backbone import EMBEDDING_DIM
from tests.conftest import TINY_INPUT_SIZE


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return AttributeModel.load(tiny_model_dir)


def photo() -> np.ndarray:
    pixels = np.full((120, 90, 3), 180, dtype=np.uint8)
    pixels[10:60, 20:70] = (200, 30, 40)
    pixels[60:110, 30:60] = (30, 40, 80)
    return pixels


TOP = Region(group=Group.TOP, polygons=(make_polygon([(20, 10), (69, 10), (69, 59), (20, 59)]),))
BOTTOM = Region(group=Group.BOTTOM, polygons=(make_polygon([(30, 60), (59, 60), (59, 109), (30, 109)]),))


def test_predictions_respect_the_known_group_and_embeddings_are_unit_length(model):
    crops = [crop_garment(photo(), r, TINY_INPUT_SIZE) for r in (TOP, BOTTOM)]
    top, bottom = model.predict(crops, [Group.TOP, Group.BOTTOM])
    assert CATEGORY_GROUP[top.category] is Group.TOP and CATEGORY_GROUP[bottom.category] is Group.BOTTOM
    assert all(CATEGORY_GROUP[label] is Group.TOP for label, _ in top.top_categories)
    assert len(top.top_colors) == 3 and top.top_colors[0][1] >= top.top_colors[1][1]
    assert top.embedding.shape == (EMBEDDING_DIM,)
    assert np.isclose(np.linalg.norm(top.embedding), 1.0, atol=1e-4)


def test_unknown_group_is_taken_from_the_predicted_category(model):
    [prediction] = model.predict([crop_garment(photo(), Region(), TINY_INPUT_SIZE)], [None])
    assert CATEGORY_GROUP[prediction.category] is prediction.group


def test_engine_classifies_regions_of_encoded_bytes(model):
    engine = AttributeEngine(model, max_pixels=1_000_000)
    result = engine.classify(encode_jpeg(photo()), [TOP, BOTTOM])
    assert [g.group for g in result.garments] == [Group.TOP, Group.BOTTOM]
    assert result.model_version == model.version
    with pytest.raises(InvalidInput, match="outside the 90x120 image"):
        engine.classify(encode_jpeg(photo()), [Region(polygons=(make_polygon([(0, 0), (300, 0), (0, 5)]),))])


def test_missing_model_is_a_clear_start_up_error(tmp_path):
    with pytest.raises(ModelError, match=r"model\.json is missing"):
        AttributeModel.load(tmp_path)


def test_weights_that_do_not_match_their_description_are_refused(tmp_path, tiny_model_dir):
    shutil.copytree(tiny_model_dir, tmp_path / "m")
    with (tmp_path / "m" / HEADS_FILE).open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelError, match="checksum"):
        AttributeModel.load(tmp_path / "m")


def test_weights_for_other_labels_are_refused(tmp_path, tiny_model_dir):
    shutil.copytree(tiny_model_dir, tmp_path / "m")
    info = json.loads((tmp_path / "m" / INFO_FILE).read_text())
    info["colors"] = info["colors"][:-1]
    (tmp_path / "m" / INFO_FILE).write_text(json.dumps(info))
    with pytest.raises(ModelError, match="does not match this code"):
        AttributeModel.load(tmp_path / "m")


def test_shipped_model_loads_and_sees_ccp_colors(ccp_dir):
    """The committed weights load without any download and mostly agree with the by-eye colors."""
    from kloset.core.config import Settings
    from kloset.core.models.training import iter_labeled_garments

    shipped = AttributeModel.load(Settings().model_dir)
    crops, groups, colors = [], [], []
    for _, pixels, garments in iter_labeled_garments(ccp_dir):
        for g in garments:
            crops.append(crop_garment(pixels, g.region, shipped.input_size))
            groups.append(g.group)
            colors.append(g.color)
        if len(crops) >= 24:
            break
    predictions = shipped.predict(crops, groups)
    agreement = np.mean([p.color == c for p, c in zip(predictions, colors, strict=True)])
    assert agreement >= 0.6
