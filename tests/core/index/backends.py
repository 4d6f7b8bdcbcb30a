"""The store backends every contract test runs against, opened the same way."""

from kloset.core.index.edge.store import EdgeGarmentStore
from kloset.core.index.qdrant_store import QdrantGarmentStore

BACKENDS = ("edge", "local")


def open_backend(backend, path, dim=3, color_dim=2):
    if backend == "edge":
        return EdgeGarmentStore.open(path=str(path / "edge"), dim=dim, color_dim=color_dim)
    return QdrantGarmentStore.open(url=None, api_key=None, path=str(path / "local"), collection="garments", dim=dim,
                                   color_dim=color_dim)  # fmt: skip
