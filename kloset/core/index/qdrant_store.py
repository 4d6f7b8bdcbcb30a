"""GarmentStore on qdrant-client: a Qdrant server, or local mode in a folder (one process per folder)."""

import threading
from collections.abc import Iterator, Sequence

from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from kloset.core.errors import ModelError, Unavailable
from kloset.core.index.store import (
    COLOR,
    MAX_MODEL_VERSIONS,
    VISUAL,
    Candidate,
    CatalogGarment,
    StoreFilter,
    garment_from_point,
    point_id,
    vector_list,
)

_KEYWORD_FIELDS = ("item_id", "photo_id", "group", "category", "color", "model_version")


class QdrantGarmentStore:
    """GarmentStore on qdrant-client: a Qdrant server, or local mode in a folder (one process per folder)."""

    def __init__(
        self, client: QdrantClient, collection: str, dim: int | None, color_dim: int | None, *, local: bool
    ) -> None:
        """dim and color_dim None: open an existing collection with whatever vectors it holds (migrate-store)."""
        self._client = client
        self._collection = collection
        # Local mode is plain Python over shared dicts; a server handles its own concurrency.
        self._lock = threading.RLock() if local else None
        self._sizes = {VISUAL: dim, COLOR: color_dim}
        if dim is None or color_dim is None:
            self._sizes = self._existing_sizes()
        self._ensure_collection()

    @classmethod
    def open(cls, *, url: str | None, api_key: str | None, path: str, collection: str, dim: int | None,
             color_dim: int | None):  # fmt: skip
        """Connect to a server when url is given, else open (and lock) a local-mode folder."""
        try:
            client = QdrantClient(url=url, api_key=api_key) if url else QdrantClient(path=path)
        except RuntimeError as exc:  # local mode: folder already opened by another process
            raise Unavailable(f"cannot open Qdrant local storage at {path}: {exc}") from None
        try:
            return cls(client, collection, dim, color_dim, local=url is None)
        except Exception:
            client.close()  # local mode holds the folder's lock until closed
            raise

    def _existing_sizes(self) -> dict[str, int]:
        if not self._call(self._client.collection_exists, self._collection):
            raise ModelError(f"Qdrant holds no collection {self._collection!r}")
        return self._check_vectors(adopt=True)

    def vector_sizes(self) -> dict[str, int]:
        return dict(self._sizes)

    def _check_vectors(self, adopt: bool = False) -> dict[str, int]:
        """A collection built for other vectors cannot be searched with these: say so at start, touch nothing.
        Returns the sizes it holds; adopt accepts them whatever this model makes (migrate-store)."""
        vectors = self._call(self._client.get_collection, self._collection).config.params.vectors
        if not isinstance(vectors, dict):
            raise ModelError(
                f"Qdrant collection {self._collection!r} was indexed by an older kloset (one unnamed vector, no "
                f"'{VISUAL}'/'{COLOR}' pair): index the catalog again into a new collection (KLOSET_COLLECTION) "
                "and delete the old one when done; kloset leaves it untouched"
            )
        found = {name: params.size for name, params in vectors.items()}
        if not adopt and any(found.get(name) != size for name, size in self._sizes.items()):
            raise ModelError(
                f"Qdrant collection {self._collection!r} holds vectors {found} but this model makes {self._sizes}: "
                "index into a new collection (KLOSET_COLLECTION) or delete the old one"
            )
        return found

    def close(self) -> None:
        self._client.close()

    def optimize(self, should_stop=lambda: False) -> bool:
        """A server optimizes in the background on its own; local mode has no index to build."""
        return False

    def unindexed(self) -> int:
        return 0

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
                vectors_config={
                    name: models.VectorParams(size=size, distance=models.Distance.COSINE)
                    for name, size in self._sizes.items()
                },
            )
        else:
            self._check_vectors()
        if self._lock is not None:
            return  # local mode has no payload indexes: it scans every point anyway
        for name in _KEYWORD_FIELDS:
            self._call(
                self._client.create_payload_index,
                self._collection,
                field_name=name,
                field_schema=models.PayloadSchemaType.KEYWORD,
            )

    def upsert(self, garments: Sequence[CatalogGarment]) -> None:
        points = [
            models.PointStruct(
                id=point_id(g.item_id),
                vector={VISUAL: vector_list(g.embedding), COLOR: vector_list(g.color_vector)},
                payload=g.payload(),
            )
            for g in garments
        ]
        if points:
            self._call(self._client.upsert, self._collection, points=points, wait=True)

    def candidates(self, vector, using: str, where: StoreFilter, limit: int, *, exact: bool = False) -> list[Candidate]:
        other = COLOR if using == VISUAL else VISUAL
        response = self._call(
            self._client.query_points,
            self._collection,
            query=vector_list(vector),
            using=using,
            query_filter=_filter(where),
            limit=limit,
            with_payload=True,
            with_vectors=[other],
            search_params=models.SearchParams(exact=True) if exact and self._lock is None else None,  # local: exact
        )
        return [Candidate(garment_from_point(p), float(p.score)) for p in response.points]

    def garments(self, where: StoreFilter, limit: int) -> list[CatalogGarment]:
        points, _ = self._call(
            self._client.scroll,
            self._collection,
            scroll_filter=_filter(where),
            limit=limit,
            with_payload=True,
            with_vectors=True,
        )
        return [garment_from_point(p) for p in points]

    def scan(self, batch: int) -> Iterator[list[CatalogGarment]]:
        """Every garment with its vectors, batch by batch (to copy a catalog elsewhere)."""
        offset = None
        while True:
            points, offset = self._call(
                self._client.scroll, self._collection, limit=batch, offset=offset, with_payload=True,
                with_vectors=True,
            )  # fmt: skip
            if points:
                yield [garment_from_point(p) for p in points]
            if offset is None:
                return

    def retrieve(self, item_id: str) -> CatalogGarment | None:
        points = self._call(self._client.retrieve, self._collection, ids=[point_id(item_id)], with_vectors=True)
        return garment_from_point(points[0]) if points else None

    def count(self) -> int:
        return int(self._call(self._client.count, self._collection, exact=True).count)

    def model_versions(self) -> dict[str, int]:
        # A server answers from its keyword index on model_version; local mode counts payloads in Python
        response = self._call(self._client.facet, self._collection, "model_version", limit=MAX_MODEL_VERSIONS)
        return {str(hit.value): int(hit.count) for hit in response.hits}

    def delete(self, item_ids: Sequence[str]) -> None:
        ids = [point_id(i) for i in item_ids]
        if ids:
            self._call(
                self._client.delete, self._collection, points_selector=models.PointIdsList(points=ids), wait=True
            )


def _filter(where: StoreFilter) -> models.Filter:
    must = [
        models.FieldCondition(key=key, match=models.MatchAny(any=list(values)))
        for key, values in (
            ("group", [g.value for g in where.groups]),
            ("category", where.categories),
            ("color", where.colors),
            ("photo_id", where.photos),
        )
        if values
    ]
    must_not = [models.HasIdCondition(has_id=[point_id(i) for i in where.exclude_items])] if where.exclude_items else []
    return models.Filter(must=must, must_not=must_not)
