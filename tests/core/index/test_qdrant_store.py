import numpy as np
import pytest

from kloset.core.errors import ModelError
from kloset.core.garments.labels import Group
from kloset.core.index.qdrant_store import QdrantGarmentStore
from kloset.core.index.store import CatalogGarment, point_id


@pytest.fixture
def store(tmp_path):
    s = QdrantGarmentStore.open(url=None, api_key=None, path=str(tmp_path), collection="garments", dim=3)
    yield s
    s.close()


def garment(item_id, category="blouse", color="white", vector=(1, 0, 0)):
    return CatalogGarment(item_id, Group.TOP, category, color, f"{item_id}.jpg", "m1", np.array(vector, np.float32))


def test_point_id_is_uuid5_of_the_item_id_and_stable():
    assert point_id("0001/top") == point_id("0001/top") != point_id("0001/bottom")
    assert point_id("0001/top")[14] == "5"  # UUID version 5


def test_upserting_the_same_item_twice_keeps_one_point(store):
    store.upsert([garment("a/top"), garment("b/top")])
    store.upsert([garment("a/top", color="black")])
    assert store.count() == 2
    assert store.retrieve("a/top").color == "black"


def test_query_filters_by_category_and_color_and_excludes_the_query_item(store):
    store.upsert(
        [
            garment("a/top", vector=(1, 0, 0)),
            garment("b/top", vector=(0.9, 0.1, 0)),
            garment("c/top", vector=(0.1, 0.9, 0)),
            garment("d/top", color="black", vector=(1, 0, 0)),
            garment("e/top", category="shirt", vector=(1, 0, 0)),
        ]
    )
    hits = store.query(np.array([1, 0, 0], np.float32), 10, ["blouse"], ["white"], exclude_item="a/top")
    assert [h.garment.item_id for h in hits] == ["b/top", "c/top"]
    assert hits[0].score > hits[1].score
    both_colors = store.query(np.array([1, 0, 0], np.float32), 10, ["blouse"], ["white", "black"])
    assert {h.garment.item_id for h in both_colors} == {"a/top", "b/top", "c/top", "d/top"}


def test_retrieve_returns_the_embedding_and_delete_removes(store):
    store.upsert([garment("a/top", vector=(0, 1, 0))])
    np.testing.assert_allclose(store.retrieve("a/top").embedding, [0, 1, 0])
    assert store.retrieve("missing") is None
    store.delete(["a/top", "never-there"])
    assert store.count() == 0


def test_a_collection_of_another_vector_size_is_refused_at_open(tmp_path):
    path = str(tmp_path / "q")
    QdrantGarmentStore.open(url=None, api_key=None, path=path, collection="g", dim=4).close()
    with pytest.raises(ModelError, match="holds 4-d vectors but the model makes 8-d"):
        QdrantGarmentStore.open(url=None, api_key=None, path=path, collection="g", dim=8)
