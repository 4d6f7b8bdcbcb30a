"""GarmentStore on qdrant-client: a Qdrant server, or local mode in a folder (one process per folder)."""

import threading
from collections.abc import Sequence

import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from kloset.core.errors import ModelError, Unavailable
from kloset.core.index.store import CatalogGarment, Hit, point_id

_KEYWORD_FIELDS = ("item_id", "group", "category", "color", "model_version")


class QdrantGarmentStore:
    """GarmentStore on qdrant-client: a Qdrant server, or local mode in a folder (one process per folder)."""

    def __init__(self, client: QdrantClient, collection: str, dim: int, *, local: bool) -> None:
        self._client = client
        self._collection = collection
        self._dim = dim
        # Local mode is plain Python over shared dicts; a server handles its own concurrency.
        self._lock = threading.RLock() if local else None
        self._ensure_collection()

    @classmethod
    def open(cls, *, url: str | None, api_key: str | None, path: str, collection: str, dim: int):
        """Connect to a server when url is given, else open (and lock) a local-mode folder."""
        try:
            client = QdrantClient(url=url, api_key=api_key) if url else QdrantClient(path=path)
        except RuntimeError as exc:  # local mode: folder already opened by another process
            raise Unavailable(f"cannot open Qdrant local storage at {path}: {exc}") from None
        try:
            return cls(client, collection, dim, local=url is None)
        except Exception:
            client.close()  # local mode holds the folder's lock until closed
            raise

    def _check_vector_size(self) -> None:
        """A collection built by a model with other vectors cannot be searched with this one's: say so at start."""
        vectors = self._call(self._client.get_collection, self._collection).config.params.vectors
        size = vectors.size if isinstance(vectors, models.VectorParams) else None
        if size is not None and size != self._dim:
            raise ModelError(
                f"Qdrant collection {self._collection!r} holds {size}-d vectors but the model makes {self._dim}-d: "
                "index into a new collection (KLOSET_COLLECTION) or delete the old one"
            )

    def close(self) -> None:
        self._client.close()

    def _call(self, fn, *args, **kwargs):
        try:
            if self._lock is None:
                return fn(*args, **kwargs)
            with self._lock:
                return fn(*args, **kwargs)
        except (ResponseHandlingException, UnexpectedResponse, ConnectionError) as exc:
            raise Unavailable(f"Qdrant did not answer: {exc}") from None

    def _ensure_collection(self) -> None:
        if not self._call(self._client.collection_exists, self._collection):
            self._call(
                self._client.create_collection,
                self._collection,
                vectors_config=models.VectorParams(size=self._dim, distance=models.Distance.COSINE),
            )
        else:
            self._check_vector_size()
        if self._lock is not None:
            return  # local mode has no payload indexes: it scans every point anyway
        for field in _KEYWORD_FIELDS:
            self._call(
                self._client.create_payload_index,
                self._collection,
                field_name=field,
                field_schema=models.PayloadSchemaType.KEYWORD,
            )

    def upsert(self, garments: Sequence[CatalogGarment]) -> None:
        points = [
            models.PointStruct(id=point_id(g.item_id), vector=_as_list(g.embedding), payload=g.payload())
            for g in garments
        ]
        if points:
            self._call(self._client.upsert, self._collection, points=points, wait=True)

    def query(self, vector, limit, categories=(), colors=(), exclude_item=None) -> list[Hit]:
        must = [
            models.FieldCondition(key=key, match=models.MatchAny(any=list(values)))
            for key, values in (("category", categories), ("color", colors))
            if values
        ]
        must_not = [models.HasIdCondition(has_id=[point_id(exclude_item)])] if exclude_item else []
        response = self._call(
            self._client.query_points,
            self._collection,
            query=_as_list(vector),
            query_filter=models.Filter(must=must, must_not=must_not),
            limit=limit,
            with_payload=True,
        )
        return [
            Hit(garment=CatalogGarment.from_payload(p.payload or {}), score=float(p.score)) for p in response.points
        ]

    def retrieve(self, item_id: str) -> CatalogGarment | None:
        points = self._call(self._client.retrieve, self._collection, ids=[point_id(item_id)], with_vectors=True)
        if not points:
            return None
        return CatalogGarment.from_payload(points[0].payload or {}, np.asarray(points[0].vector, dtype=np.float32))

    def count(self) -> int:
        return int(self._call(self._client.count, self._collection, exact=True).count)

    def delete(self, item_ids: Sequence[str]) -> None:
        ids = [point_id(i) for i in item_ids]
        if ids:
            self._call(
                self._client.delete, self._collection, points_selector=models.PointIdsList(points=ids), wait=True
            )


def _as_list(vector: np.ndarray | None) -> list[float]:
    if vector is None:
        raise ValueError("a garment needs its embedding to be stored")
    return np.asarray(vector, dtype=np.float32).tolist()
