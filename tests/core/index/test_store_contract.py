"""The GarmentStore contract, run against every backend: Qdrant Edge (the embedded default) and qdrant-client
local mode (the code path of a Qdrant server)."""

import dataclasses

import numpy as np
import pytest

from kloset.core.errors import ModelError
from kloset.core.garments.labels import Group
from kloset.core.garments.regions import Box
from kloset.core.index.store import COLOR, VISUAL, CatalogGarment, StoreFilter, photo_of, point_id
from tests.core.index.backends import BACKENDS, open_backend


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def store(backend, tmp_path):
    s = open_backend(backend, tmp_path)
    yield s
    s.close()


def garment(item_id, category="blouse", color="white", vector=(1, 0, 0), color_vector=(1, 0), group=Group.TOP):
    return CatalogGarment(
        item_id, group, category, color, f"{item_id}.jpg", "m1", np.array(vector, np.float32),
        np.array(color_vector, np.float32),
    )  # fmt: skip


def ids(garments):
    return [g.item_id for g in garments]


def test_point_id_is_uuid5_of_the_item_id_and_stable():
    assert point_id("0001/top") == point_id("0001/top") != point_id("0001/bottom")
    assert point_id("0001/top")[14] == "5"  # UUID version 5
    assert photo_of("shop/0001/top") == "shop/0001" and photo_of("plain") == "plain"


def test_a_filter_names_each_restricted_field_once_and_the_points_it_leaves_out():
    where = StoreFilter(groups=(Group.TOP,), colors=("white", "black"), exclude_items=("a/top",))
    assert where.matches() == [("group", ["top"]), ("color", ["white", "black"])]
    assert where.excluded_points() == [point_id("a/top")]
    assert StoreFilter().matches() == [] and StoreFilter().excluded_points() == []


def test_upserting_the_same_item_twice_keeps_one_point(store):
    store.upsert([garment("a/top"), garment("b/top")])
    store.upsert([garment("a/top", color="black")])
    assert store.count() == 2
    assert store.retrieve("a/top").color == "black"


def test_candidates_are_the_nearest_by_one_vector_within_the_filter_with_the_other_vector(store):
    store.upsert(
        [
            garment("a/top", vector=(1, 0, 0), color_vector=(0, 1)),
            garment("b/top", vector=(0.9, 0.1, 0), color_vector=(0, 1)),
            garment("c/top", vector=(0, 0, 1), color_vector=(1, 0)),  # far visually, same color as the query
            garment("d/top", color="black", vector=(1, 0, 0)),
            garment("e/top", category="shirt", vector=(1, 0, 0)),
            garment("f/bottom", category="skirt", vector=(1, 0, 0), group=Group.BOTTOM),
        ]
    )
    where = StoreFilter(groups=(Group.TOP,), categories=("blouse",), colors=("white",), exclude_items=("a/top",))
    by_visual = store.candidates(np.array([1, 0, 0], np.float32), VISUAL, where, limit=1)
    assert [c.garment.item_id for c in by_visual] == ["b/top"]
    assert by_visual[0].similarity == pytest.approx(0.9 / np.hypot(0.9, 0.1))
    assert by_visual[0].garment.color_vector is not None
    by_color = store.candidates(np.array([1, 0], np.float32), COLOR, where, limit=1)
    assert [c.garment.item_id for c in by_color] == ["c/top"] and by_color[0].garment.embedding is not None
    wider = StoreFilter(groups=(Group.TOP,), colors=("white", "black"))
    found = store.candidates(np.array([1, 0, 0], np.float32), VISUAL, wider, limit=10)
    assert {c.garment.item_id for c in found} == {"a/top", "b/top", "c/top", "d/top", "e/top"}
    assert [c.similarity for c in found] == sorted((c.similarity for c in found), reverse=True)


def test_garments_by_photo_and_group(store):
    store.upsert([garment("p1/top"), garment("p1/bottom", group=Group.BOTTOM, category="skirt"),
                  garment("p2/bottom", group=Group.BOTTOM, category="skirt")])  # fmt: skip
    outfit = store.garments(StoreFilter(groups=(Group.BOTTOM,), photos=("p1",)), limit=10)
    assert ids(outfit) == ["p1/bottom"]


def test_retrieve_returns_both_vectors_the_photo_and_the_box_and_delete_removes(store):
    g = CatalogGarment("shop/7/top", Group.TOP, "blouse", "white", "7.jpg", "m1", np.array([0, 1, 0], np.float32),
                       np.array([0, 1], np.float32), photo_id="shop/7", image_digest="ab" * 32,
                       box=Box(1, 2, 30, 40))  # fmt: skip
    store.upsert([g])
    back = store.retrieve("shop/7/top")
    np.testing.assert_allclose(back.embedding, [0, 1, 0])
    np.testing.assert_allclose(back.color_vector, [0, 1])
    assert (back.photo, back.image_digest, back.box) == ("shop/7", "ab" * 32, Box(1, 2, 30, 40))
    assert store.retrieve("missing") is None
    store.delete(["shop/7/top", "never-there"])
    assert store.count() == 0


def test_exact_search_finds_what_the_index_finds(store):
    store.upsert([garment(f"p{i}/top", vector=(1, i / 10, 0)) for i in range(20)])
    query = np.array([1, 0.5, 0], np.float32)
    walked = store.candidates(query, VISUAL, StoreFilter(), limit=5)
    scanned = store.candidates(query, VISUAL, StoreFilter(), limit=5, exact=True)
    assert ids(c.garment for c in walked) == ids(c.garment for c in scanned)
    assert scanned[0].garment.item_id == "p5/top"


def test_writes_survive_close_and_reopen(backend, tmp_path):
    s = open_backend(backend, tmp_path)
    s.upsert([garment("a/top"), garment("b/top")])
    s.delete(["b/top"])
    s.close()
    s = open_backend(backend, tmp_path)
    try:
        assert s.count() == 1 and s.retrieve("a/top") is not None and s.retrieve("b/top") is None
    finally:
        s.close()


def test_optimize_leaves_every_garment_searchable(store):
    store.upsert([garment(f"p{i}/top", vector=(1, i / 10, 0)) for i in range(30)])
    store.optimize()
    assert store.count() == 30
    assert store.candidates(np.array([1, 0, 0], np.float32), VISUAL, StoreFilter(), 1)[0].garment.item_id == "p0/top"


def test_a_store_of_other_vector_sizes_is_refused_at_open(backend, tmp_path):
    open_backend(backend, tmp_path, dim=4).close()
    with pytest.raises(ModelError, match=r"holds vectors .*'visual': 4.* but this model makes"):
        open_backend(backend, tmp_path, dim=8)


def test_model_versions_count_garments_per_version_through_overwrites_and_deletes(store):
    assert store.model_versions() == {}
    store.upsert([garment(f"p{i}/top") for i in range(5)])
    store.upsert([dataclasses.replace(garment(f"p{i}/top"), model_version="m2") for i in range(2)])
    store.delete(["p4/top"])
    assert store.model_versions() == {"m1": 2, "m2": 2}
    store.optimize()
    assert store.model_versions() == {"m1": 2, "m2": 2}
