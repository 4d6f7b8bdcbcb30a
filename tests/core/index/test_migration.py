"""A catalog in a Qdrant local-mode folder is refused by the Edge default until copied, and copied whole."""

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from kloset.core.config import Settings
from kloset.core.errors import ModelError
from kloset.core.garments.labels import Group
from kloset.core.garments.regions import Box
from kloset.core.index.migration import migrate_store, needs_migration
from kloset.core.index.qdrant_store import QdrantGarmentStore
from kloset.core.index.store import CatalogGarment, StoreBackend
from kloset.core.index.stores import open_store

DIM, COLOR_DIM = 6, 3


def unit(v):
    return v / np.linalg.norm(v)


def settings(tmp_path, **overrides):
    return Settings(data_dir=tmp_path, **overrides)


def old_catalog(tmp_path, n=300):
    rng = np.random.default_rng(1)
    catalog = [
        CatalogGarment(f"shop/{i}/top", Group.TOP, "blouse", "white", f"{i}.jpg", "m1", rng.random(DIM, np.float32),
                       rng.random(COLOR_DIM, np.float32), photo_id=f"shop/{i}", image_digest="ab" * 32,
                       box=Box(1, 2, 3, 4))
        for i in range(n)
    ]  # fmt: skip
    s = QdrantGarmentStore.open(url=None, api_key=None, path=str(tmp_path / "qdrant"), collection="garments",
                                dim=DIM, color_dim=COLOR_DIM)  # fmt: skip
    s.upsert(catalog)
    s.close()
    return catalog


def test_the_edge_default_refuses_an_unmigrated_local_folder_and_names_the_command(tmp_path):
    old_catalog(tmp_path, n=3)
    with pytest.raises(ModelError, match=r"run `kloset migrate-store`.*or set KLOSET_STORE=local"):
        open_store(settings(tmp_path), dim=DIM, color_dim=COLOR_DIM)
    local = open_store(settings(tmp_path, store=StoreBackend.LOCAL), dim=DIM, color_dim=COLOR_DIM)
    assert local.count() == 3  # still there, untouched
    local.close()


def test_migrate_store_copies_every_garment_with_its_vectors_and_payload(tmp_path):
    catalog = old_catalog(tmp_path)
    progress = []
    report = migrate_store(settings(tmp_path), lambda done, total: progress.append((done, total)))
    assert (report.copied, report.store_count) == (300, 300) and progress[-1] == (300, 300)
    assert not needs_migration(settings(tmp_path))
    assert migrate_store(settings(tmp_path)).store_count == 300  # again: same ids, nothing duplicated
    store = open_store(settings(tmp_path), dim=DIM, color_dim=COLOR_DIM)
    try:
        assert store.count() == 300
        back = store.retrieve("shop/42/top")
        # Cosine stores keep vectors unit length: the copy is the same direction
        np.testing.assert_allclose(back.embedding, unit(catalog[42].embedding), rtol=1e-5)
        np.testing.assert_allclose(back.color_vector, unit(catalog[42].color_vector), rtol=1e-5)
        assert (back.photo, back.image_digest, back.box, back.model_version) == ("shop/42", "ab" * 32,
                                                                                Box(1, 2, 3, 4), "m1")  # fmt: skip
    finally:
        store.close()


def test_a_collection_from_before_named_vectors_cannot_be_migrated_only_reindexed(tmp_path):
    client = QdrantClient(path=str(tmp_path / "qdrant"))
    client.create_collection("garments", vectors_config=models.VectorParams(size=3, distance=models.Distance.COSINE))
    client.close()
    with pytest.raises(ModelError, match="older kloset"):
        migrate_store(settings(tmp_path))
    assert needs_migration(settings(tmp_path))


def test_nothing_to_migrate_is_an_error_not_a_silent_success(tmp_path):
    with pytest.raises(ModelError, match="nothing to migrate"):
        migrate_store(settings(tmp_path))


def test_the_store_setting_must_agree_with_the_url():
    with pytest.raises(ValueError, match="needs KLOSET_QDRANT_URL"):
        Settings(store=StoreBackend.SERVER)
    with pytest.raises(ValueError, match="unset KLOSET_QDRANT_URL"):
        Settings(store=StoreBackend.EDGE, qdrant_url="http://qdrant:6333")
    assert Settings(qdrant_url="http://qdrant:6333").store_backend is StoreBackend.SERVER
    assert Settings().store_backend is StoreBackend.EDGE
