"""Which GarmentStore a configuration opens: Qdrant Edge in this process by default, a Qdrant server when a URL
is given, qdrant-client local mode when asked for."""

import ssl
from typing import TYPE_CHECKING

from kloset.core.config import Settings, WriteConsistency
from kloset.core.garments.color import COLOR_VECTOR_DIM
from kloset.core.index.migration import refuse_unmigrated
from kloset.core.index.store import GarmentStore, StoreBackend
from kloset.core.models.backbone import EMBEDDING_DIM
from kloset.core.telemetry import Metrics

if TYPE_CHECKING:  # qdrant-client is imported only when a Qdrant server or local mode is used
    from kloset.core.index.qdrant_store import CollectionLayout


def open_store(
    settings: Settings, dim: int = EMBEDDING_DIM, color_dim: int = COLOR_VECTOR_DIM, metrics: Metrics | None = None
) -> GarmentStore:
    """Open the configured backend, timing its calls into metrics (a Program's); the caller closes it (which
    flushes every write)."""
    backend = settings.store_backend
    if backend is StoreBackend.EDGE:
        from kloset.core.index.edge.store import EdgeGarmentStore

        refuse_unmigrated(settings)
        return EdgeGarmentStore.open(path=str(settings.edge_root), dim=dim, color_dim=color_dim,
                                     tuning=settings.edge_tuning, metrics=metrics)  # fmt: skip
    from kloset.core.index.qdrant_store import QdrantGarmentStore

    return QdrantGarmentStore.open(
        url=settings.qdrant_url if backend is StoreBackend.SERVER else None,
        api_key=settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None,
        path=str(settings.qdrant_local_path),
        collection=settings.collection,
        dim=dim,
        color_dim=color_dim,
        layout=collection_layout(settings),
        verify=ssl.create_default_context(cafile=str(settings.tls_ca)) if settings.tls_ca else None,
        metrics=metrics,
    )


def collection_layout(settings: Settings) -> "CollectionLayout":
    """Shards, replication and write consistency of new collections; majority and all count the replicas."""
    from kloset.core.index.qdrant_store import CollectionLayout

    replicas = settings.qdrant_replication
    consistency = {
        WriteConsistency.ONE: 1,
        WriteConsistency.MAJORITY: replicas // 2 + 1,
        WriteConsistency.ALL: replicas,
    }[settings.qdrant_write_consistency]
    return CollectionLayout(
        shards=settings.qdrant_shards, replication=replicas, write_consistency=consistency,
        quantization=settings.quantization, oversampling=settings.quantization_oversampling,
    )  # fmt: skip
