"""GarmentStore on qdrant-client: a Qdrant server, or local mode in a folder (one process per folder).

The catalog is an alias (KLOSET_COLLECTION, e.g. `garments`) naming a collection (`garments-000001`), so a reindex
can build the next collection beside it and switch the alias in one atomic call while searches go on. Every point
call goes through the alias; the server resolves it per request. A plain collection of that name (kloset before
aliases) keeps working as it is and is replaced by an alias at the first reindex.
"""

import logging
import ssl
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from kloset.core.errors import ModelError, Unavailable
from kloset.core.index.edge.tuning import Quantization
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
from kloset.core.telemetry import Metrics, timed

log = logging.getLogger(__name__)

_KEYWORD_FIELDS = ("item_id", "photo_id", "group", "category", "color", "model_version")


@dataclass(frozen=True)
class CollectionLayout:
    """How a new collection spreads over a Qdrant cluster (local mode ignores it)."""

    shards: int = 1
    replication: int = 1
    write_consistency: int = 1  # replicas of a shard that must apply a write before it is acknowledged
    # The visual vector's compressed copy held in RAM (the originals on disk, read to rescore), as on Edge
    quantization: Quantization = Quantization.INT8
    oversampling: float = 2.0


class QdrantGarmentStore:
    """GarmentStore on qdrant-client: a Qdrant server, or local mode in a folder (one process per folder)."""

    def __init__(
        self, client: QdrantClient, collection: str, dim: int | None, color_dim: int | None, *, local: bool,
        layout: CollectionLayout = CollectionLayout(), metrics: Metrics | None = None,
    ) -> None:  # fmt: skip
        """dim and color_dim None: open an existing catalog with whatever vectors it holds (migrate-store)."""
        self.metrics = metrics or Metrics()  # the Program's: search and upsert times
        self._client = client
        self._collection = collection  # the alias (or a legacy plain collection) every point call names
        self._layout = layout
        # Local mode is plain Python over shared dicts; a server handles its own concurrency.
        self._lock = threading.RLock() if local else None
        self._sizes = {VISUAL: dim, COLOR: color_dim}
        if dim is None or color_dim is None:
            self._sizes = self._existing_sizes()
        self._ensure_collection()

    @classmethod
    def open(cls, *, url: str | None, api_key: str | None, path: str, collection: str, dim: int | None,
             color_dim: int | None, layout: CollectionLayout = CollectionLayout(),
             verify: ssl.SSLContext | None = None, metrics: Metrics | None = None):  # fmt: skip
        """Connect to a server when url is given (https when the URL says so, trusting verify's roots), else open
        (and lock) a local-mode folder."""
        try:
            if url:
                client = QdrantClient(url=url, api_key=api_key, **({"verify": verify} if verify else {}))
            else:
                client = QdrantClient(path=path)
        except RuntimeError as exc:  # local mode: folder already opened by another process
            raise Unavailable(f"cannot open Qdrant local storage at {path}: {exc}") from None
        try:
            return cls(client, collection, dim, color_dim, local=url is None, layout=layout, metrics=metrics)
        except Exception:
            client.close()  # local mode holds the folder's lock until closed
            raise

    def _existing_sizes(self) -> dict[str, int]:
        if self._target() is None:
            raise ModelError(f"Qdrant holds no collection {self._collection!r}")
        return self._check_vectors(adopt=True)

    def _target(self) -> str | None:
        """The collection the catalog's name stands for: its alias's, the legacy plain one, or None."""
        aliases = {a.alias_name: a.collection_name for a in self._call(self._client.get_aliases).aliases}
        if self._collection in aliases:
            return aliases[self._collection]
        return self._collection if self._call(self._client.collection_exists, self._collection) else None

    def vector_sizes(self) -> dict[str, int]:
        return dict(self._sizes)

    def _check_vectors(self, adopt: bool = False) -> dict[str, int]:
        """A collection built for other vectors cannot be searched with these: say so at start, touch nothing.
        Returns the sizes it holds; adopt accepts them whatever this model makes (migrate-store)."""
        vectors = self._call(self._client.get_collection, self._target()).config.params.vectors
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
        if self._target() is None:
            physical = self._create_collection()
            change = models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name=physical, alias_name=self._collection)
            )
            self._call(self._client.update_collection_aliases, change_aliases_operations=[change])
        else:
            self._check_vectors()

    def _create_collection(self) -> str:
        """A new collection for this catalog (garments-000001, -000002, ...) with its payload indexes."""
        prefix = f"{self._collection}-"
        numbers = [
            int(c.name[len(prefix) :])
            for c in self._call(self._client.get_collections).collections
            if c.name.startswith(prefix) and c.name[len(prefix) :].isdigit()
        ]
        name = f"{prefix}{max(numbers, default=0) + 1:06d}"
        self._call(
            self._client.create_collection,
            name,
            vectors_config={
                vector: models.VectorParams(size=size, distance=models.Distance.COSINE)
                for vector, size in self._sizes.items()
            }
            | {VISUAL: _visual_params(self._sizes[VISUAL], self._layout.quantization)},
            shard_number=self._layout.shards,
            replication_factor=self._layout.replication,
            write_consistency_factor=self._layout.write_consistency,
        )
        if self._lock is None:  # a server's planner uses them; local mode scans every point anyway
            for field in _KEYWORD_FIELDS:
                self._call(self._client.create_payload_index, name, field_name=field,
                           field_schema=models.PayloadSchemaType.KEYWORD, wait=True)  # fmt: skip
        log.info("created Qdrant collection %s (%s)", name, self._layout)
        return name

    def start_rebuild(self) -> "QdrantRebuild":
        """A new, empty collection beside the one the alias names."""
        return QdrantRebuild(self, self._create_collection())

    @timed("store_upsert")
    def upsert(self, garments: Sequence[CatalogGarment]) -> None:
        self._upsert_into(self._collection, garments)

    def _upsert_into(self, collection: str, garments: Sequence[CatalogGarment]) -> None:
        points = [
            models.PointStruct(
                id=point_id(g.item_id),
                vector={VISUAL: vector_list(g.embedding), COLOR: vector_list(g.color_vector)},
                payload=g.payload(),
            )
            for g in garments
        ]
        if points:
            self._call(self._client.upsert, collection, points=points, wait=True)

    @timed("store_search")
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
            search_params=self._search_params(exact),
        )
        return [Candidate(garment_from_point(p), float(p.score)) for p in response.points]

    def _search_params(self, exact: bool) -> models.SearchParams | None:
        """Local mode always searches exactly; a server walks the quantized vectors and rescores the candidates
        from the originals (an exact search compares the originals alone: the truth recall is measured against)."""
        if self._lock is not None:
            return None
        quantization = None
        if self._layout.quantization != Quantization.NONE:
            quantization = models.QuantizationSearchParams(
                ignore=exact, rescore=True, oversampling=self._layout.oversampling
            )
        return models.SearchParams(exact=exact, quantization=quantization)

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

    def scan(self, batch: int, *, vectors: bool = True) -> Iterator[list[CatalogGarment]]:
        """Every garment (with its vectors unless vectors=False), batch by batch (to copy a catalog elsewhere)."""
        return self._scan(self._collection, batch, vectors)

    def _scan(self, collection: str, batch: int, vectors: bool) -> Iterator[list[CatalogGarment]]:
        offset = None
        while True:
            points, offset = self._call(
                self._client.scroll, collection, limit=batch, offset=offset, with_payload=True, with_vectors=vectors
            )
            if points:
                yield [garment_from_point(p) for p in points]
            if offset is None:
                return

    def _lacking(self, collection: str, item_ids: Sequence[str]) -> list[str]:
        """The item ids collection does not hold."""
        found = self._call(self._client.retrieve, collection, ids=[point_id(i) for i in item_ids], with_payload=False,
                           with_vectors=False)  # fmt: skip
        held = {str(p.id) for p in found}
        return [i for i in item_ids if point_id(i) not in held]

    def _fetch(self, collection: str, item_ids: Sequence[str]) -> list[CatalogGarment]:
        points = self._call(self._client.retrieve, collection, ids=[point_id(i) for i in item_ids], with_vectors=True)
        return [garment_from_point(p) for p in points]

    def retrieve(self, item_id: str) -> CatalogGarment | None:
        points = self._call(self._client.retrieve, self._collection, ids=[point_id(item_id)], with_vectors=True)
        return garment_from_point(points[0]) if points else None

    def count(self) -> int:
        return self._count(self._collection)

    def _count(self, collection: str) -> int:
        return int(self._call(self._client.count, collection, exact=True).count)

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


def _visual_params(size: int, quantization: Quantization) -> models.VectorParams:
    """The visual vector of a new collection: float32 originals on disk, their quantized copy always in RAM (the
    layout Edge uses; a collection made before keeps its own until reindexed into a new one)."""
    config: models.QuantizationConfig | None = None
    if quantization == Quantization.INT8:
        config = models.ScalarQuantization(
            scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, quantile=0.99, always_ram=True)
        )
    elif quantization == Quantization.BINARY:
        config = models.BinaryQuantization(binary=models.BinaryQuantizationConfig(always_ram=True))
    on_disk = quantization != Quantization.NONE
    return models.VectorParams(size=size, distance=models.Distance.COSINE, on_disk=on_disk, quantization_config=config)


class QdrantRebuild:
    """A reindex's new collection beside the one the alias names; go_live switches the alias to it.

    Writers in other processes keep writing through the alias, so into the old collection, until the switch:
    missed() finds what they wrote that the new one lacks (before the switch, and once more after it for writes
    in flight at the switch). A garment overwritten in the old collection after the reindex read it keeps the
    reindex's version; kloset has no call that deletes garments, so none is resurrected.
    """

    def __init__(self, store: QdrantGarmentStore, collection: str) -> None:
        self.collection = collection
        self._store = store
        self._former: str | None = None  # after go_live: the collection the alias named before
        self._live = False

    def upsert(self, garments: Sequence[CatalogGarment]) -> None:
        self._store._upsert_into(self.collection, garments)

    def count(self) -> int:
        return self._store._count(self.collection)

    def missed(self, batch: int) -> Iterator[list[CatalogGarment]]:
        source = self._former if self._live else self._store._collection
        if source is None:  # the legacy plain collection was deleted at the switch
            return
        for garments in self._store._scan(source, batch, vectors=False):
            lacking = self._store._lacking(self.collection, [g.item_id for g in garments])
            if lacking:
                yield self._store._fetch(source, lacking)

    def go_live(self, should_stop: Callable[[], bool] = lambda: False) -> bool:
        """Point the alias at the new collection in one call. A legacy plain collection of the alias's name is
        deleted first (an alias cannot share its name): for those few milliseconds calls fail with UNAVAILABLE
        and writes made between the last missed() pass and the delete are lost (workers retry failed jobs)."""
        if should_stop():
            return False
        store, alias = self._store, self._store._collection
        former = store._target()
        create = models.CreateAliasOperation(
            create_alias=models.CreateAlias(collection_name=self.collection, alias_name=alias)
        )
        if former == alias:
            store._call(store._client.delete_collection, alias)
            operations = [create]
            self._former = None
        else:
            operations = [models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)), create]
            self._former = former
        store._call(store._client.update_collection_aliases, change_aliases_operations=operations)
        self._live = True
        log.info("Qdrant alias %s now names %s (was %s)", alias, self.collection, former)
        return True

    def retire(self) -> None:
        if self._former is not None:
            self._store._call(self._store._client.delete_collection, self._former)
            self._former = None

    def abandon(self) -> None:
        if not self._live:
            self._store._call(self._store._client.delete_collection, self.collection)


def _filter(where: StoreFilter) -> models.Filter:
    """StoreFilter's conditions as a qdrant-client filter (an empty one restricts nothing)."""
    must = [models.FieldCondition(key=key, match=models.MatchAny(any=values)) for key, values in where.matches()]
    excluded = where.excluded_points()
    return models.Filter(must=must, must_not=[models.HasIdCondition(has_id=excluded)] if excluded else [])
