"""What only the qdrant-client backend does: refuse collections from before named vectors, copy out a catalog."""

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from kloset.core.errors import ModelError
from kloset.core.garments.labels import Group
from kloset.core.index.qdrant_store import QdrantGarmentStore
from kloset.core.index.store import CatalogGarment


def open_store(path, dim=3, color_dim=2):
    return QdrantGarmentStore.open(url=None, api_key=None, path=str(path), collection="garments", dim=dim,
                                   color_dim=color_dim)  # fmt: skip


def test_a_collection_from_before_named_vectors_is_refused_and_left_untouched(tmp_path):
    client = QdrantClient(path=str(tmp_path / "old"))
    client.create_collection("garments", vectors_config=models.VectorParams(size=3, distance=models.Distance.COSINE))
    client.upsert("garments", points=[models.PointStruct(id=1, vector=[1, 0, 0], payload={"item_id": "x/top"})])
    client.close()
    with pytest.raises(ModelError, match=r"older kloset .*index the catalog again into a new collection"):
        open_store(tmp_path / "old")
    client = QdrantClient(path=str(tmp_path / "old"))
    assert client.count("garments").count == 1
    client.close()


def test_an_existing_collection_opens_with_its_own_sizes_and_scans_in_batches(tmp_path):
    s = open_store(tmp_path / "q", dim=3, color_dim=2)
    s.upsert([CatalogGarment(f"p{i}/top", Group.TOP, "blouse", "white", "x.jpg", "m", np.ones(3, np.float32),
                             np.ones(2, np.float32)) for i in range(7)])  # fmt: skip
    s.close()
    s = open_store(tmp_path / "q", dim=None, color_dim=None)
    try:
        assert s.vector_sizes() == {"visual": 3, "color": 2}
        batches = list(s.scan(3))
        assert [len(b) for b in batches] == [3, 3, 1]
        assert sorted(g.item_id for b in batches for g in b) == sorted(f"p{i}/top" for i in range(7))
        assert all(g.embedding is not None and g.color_vector is not None for b in batches for g in b)
    finally:
        s.close()
