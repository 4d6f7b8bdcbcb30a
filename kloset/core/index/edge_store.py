"""GarmentStore on Qdrant Edge: Qdrant's own engine in this process, the embedded default.

A folder holds one shard per generation and a CURRENT file naming the live one. Writes go to the live shard at
once (its write-ahead log makes them durable; new points land in a plain segment, searched exactly). Building
the HNSW index is another matter: `EdgeShard.optimize()` holds Python's GIL for its whole run (minutes at 100k
points), which would freeze every request of the process. So `optimize()` here copies the live shard, optimizes
the copy in a child process, replays the writes made meanwhile onto it, and swaps it in (edge_compaction.py).

A reindex builds a new, empty generation beside the live one (EdgeRebuild): every live write is applied to both,
the new shard is optimized the same way, and CURRENT is switched to it.
"""

import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import qdrant_edge as qe

from kloset.core.errors import ModelError, Unavailable
from kloset.core.index.edge_compaction import Compaction, ShardFolder
from kloset.core.index.edge_references import ShardReaders
from kloset.core.index.edge_tuning import EdgeTuning, Quantization
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

# Payload fields search filters on; keyword indexes let the planner estimate a filter's size.
KEYWORD_FIELDS = ("item_id", "photo_id", "group", "category", "color", "model_version")
# The fields whose values get HNSW links of their own (payload_m), so a search filtered by them walks a graph
# that stays connected inside the filter. Each such field costs about one more graph build in the optimize (its
# values partition the catalog), so only category: a category can be a few percent of the catalog, where the
# main graph alone loses its way. A group is a third of it or more (the main graph finds it), a color is filtered
# only with a category (an intersection that small is scanned exactly), a model version is the whole catalog
# again and a photo a few garments.
HNSW_FIELDS = ("category",)
_FLOAT32_KB = 4 / 1024


class EdgeGarmentStore:
    """GarmentStore on a Qdrant Edge shard folder (one process per folder)."""

    def __init__(
        self, folder: ShardFolder, dim: int, color_dim: int, tuning: EdgeTuning, metrics: Metrics | None = None
    ) -> None:
        self.metrics = metrics or Metrics()  # the Program's: search and upsert times
        self._folder = folder
        self._sizes = {VISUAL: dim, COLOR: color_dim}
        self._tuning = tuning
        self._config = _config(dim, color_dim, tuning)
        self._write_lock = threading.RLock()  # writes, and the swap of a compacted shard, one at a time
        self._readers = ShardReaders()  # so a swapped-out shard closes once the calls reading it are done
        self._shard = self._open_live()
        # A store made before quantization (or with other KLOSET_EDGE_* layout settings) opens as it is, every
        # garment searchable; its segments take the new layout at the next optimize, which unindexed() asks for.
        self._relayout = self._folder.layout() != self._layout()
        self._compaction: Compaction | None = None
        self._rebuild: EdgeRebuild | None = None
        self._rebuild_wanted = False  # a rebuild waits for the compaction in progress to stop
        self.last_write = 0.0  # time.monotonic() of the last upsert or delete: the optimizer waits for quiet

    @classmethod
    def open(
        cls, *, path: str, dim: int, color_dim: int, tuning: EdgeTuning | None = None, metrics: Metrics | None = None
    ) -> "EdgeGarmentStore":
        return cls(ShardFolder(Path(path)), dim, color_dim, tuning or EdgeTuning(), metrics)

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def _open_live(self) -> qe.EdgeShard:
        """Open the generation CURRENT names (a new folder: create the first), then drop what a crash left beside
        it. Any failure releases the folder's lock and deletes nothing."""
        try:
            live = self._folder.live()
            if live is None:
                path = self._folder.new_generation()
                shard = self._create_shard(path)
                self._folder.make_live(path)
                self._folder.write_layout(self._layout())  # empty: every point it takes is stored this way
                log.info("created Qdrant Edge shard %s", path)
            else:
                self._check_vectors(live)
                shard = qe.EdgeShard.load(str(live), self._config)
        except (OSError, RuntimeError, ValueError) as exc:
            self._folder.release()
            raise Unavailable(f"cannot open the Qdrant Edge shard in {self._folder.root}: {exc}") from None
        except BaseException:
            self._folder.release()
            raise
        self._folder.remove_stale()
        return shard

    def _create_shard(self, path: Path) -> qe.EdgeShard:
        shard = qe.EdgeShard.create(str(path), self._config)
        for name in KEYWORD_FIELDS:
            params = qe.KeywordIndexParams(enable_hnsw=name in HNSW_FIELDS)
            shard.update(qe.UpdateOperation.create_field_index(name, params))
        shard.flush()
        return shard

    def _layout(self) -> dict:
        """What the visual vectors' storage is configured as: a shard optimized otherwise is re-laid out."""
        return {"quantization": str(self._tuning.quantization), "vectors_on_disk": self._tuning.vectors_on_disk}

    def _laid_out(self) -> None:
        """A generation optimized with this configuration went live: record it (the caller holds the write lock)."""
        if self._relayout:
            self._folder.write_layout(self._layout())
            self._relayout = False
            log.info("Qdrant Edge store in %s now holds its vectors as %s", self._folder.root, self._layout())

    def _check_vectors(self, live: Path) -> None:
        """A shard built for other vectors cannot be searched with these: say so at start, touch nothing."""
        found = self._folder.vector_sizes(live)
        if found and found != self._sizes:
            raise ModelError(
                f"the Qdrant Edge shard in {self._folder.root} holds vectors {found} but this model makes "
                f"{self._sizes}: point KLOSET_EDGE_PATH (or KLOSET_COLLECTION) elsewhere and index the catalog again"
            )

    def close(self) -> None:
        """Flush everything to disk and release the folder (a compaction or rebuild in progress is abandoned)."""
        if self._rebuild is not None:
            self._rebuild.abandon()
        with self._write_lock:
            if self._compaction is not None:
                self._compaction.abandon()
                self._compaction = None
            self._shard.flush()
            self._shard.close()
            self._folder.release()

    def flush(self) -> None:
        with self._write_lock:
            self._shard.flush()

    # -- reads -------------------------------------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[qe.EdgeShard]:
        with self._readers.reading(lambda: self._shard) as shard:
            try:
                yield shard
            except (RuntimeError, ValueError) as exc:
                raise Unavailable(f"Qdrant Edge failed: {exc}") from None

    @timed("store_search")
    def candidates(
        self, vector: np.ndarray, using: str, where: StoreFilter, limit: int, *, exact: bool = False
    ) -> list[Candidate]:
        other = COLOR if using == VISUAL else VISUAL
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(vector_list(vector), using=using),
            filter=_filter(where),
            with_payload=True,
            with_vector=[other],
            params=_search_params(self._tuning, limit, exact),
        )
        with self._read() as shard:
            points = shard.query(request)
        return [Candidate(garment_from_point(p), float(p.score)) for p in points]

    def garments(self, where: StoreFilter, limit: int) -> list[CatalogGarment]:
        request = qe.ScrollRequest(limit=limit, filter=_filter(where), with_payload=True, with_vector=True)
        with self._read() as shard:
            records, _ = shard.scroll(request)
        return [garment_from_point(r) for r in records]

    def scan(self, batch: int, *, vectors: bool = True) -> Iterator[list[CatalogGarment]]:
        """Every garment (with its vectors unless vectors=False), batch by batch (to copy a catalog elsewhere)."""
        offset = None
        while True:
            request = qe.ScrollRequest(offset=offset, limit=batch, with_payload=True, with_vector=vectors)
            with self._read() as shard:
                records, offset = shard.scroll(request)
            if records:
                yield [garment_from_point(r) for r in records]
            if offset is None:
                return

    def retrieve(self, item_id: str) -> CatalogGarment | None:
        with self._read() as shard:
            records = shard.retrieve([point_id(item_id)], with_payload=True, with_vector=True)
        return garment_from_point(records[0]) if records else None

    def count(self) -> int:
        with self._read() as shard:
            return int(shard.count(qe.CountRequest(exact=True)))

    def model_versions(self) -> dict[str, int]:
        # Qdrant's approximate facet reads the keyword index's value counts (exact: a scan, ~25 ms at 100k)
        request = qe.FacetRequest("model_version", limit=MAX_MODEL_VERSIONS, exact=False)
        with self._read() as shard:
            hits = shard.facet(request).hits
        return {str(hit.value): int(hit.count) for hit in hits}

    def unindexed(self) -> int:
        """Points not yet in an HNSW graph (searched exactly until the next optimize); every point while the shard
        still holds a layout from before (so the background optimizer re-lays it out once)."""
        with self._read() as shard:
            info = shard.info()
        if self._relayout:
            return info.points_count
        # indexed_vectors_count counts each named vector of a point (the graph-less color one too)
        return max(0, info.points_count - info.indexed_vectors_count // len(self._sizes))

    # -- writes ------------------------------------------------------------------------------------------------

    @timed("store_upsert")
    def upsert(self, garments: Sequence[CatalogGarment]) -> None:
        if garments:
            self._write(qe.UpdateOperation.upsert_points(_points(garments)), [point_id(g.item_id) for g in garments])

    def delete(self, item_ids: Sequence[str]) -> None:
        if item_ids:
            ids = [point_id(i) for i in item_ids]
            self._write(qe.UpdateOperation.delete_points(ids), ids)

    def _write(self, operation: qe.UpdateOperation, ids: Sequence[str]) -> None:
        with self._write_lock:
            try:
                self._shard.update(operation)
            except (RuntimeError, ValueError) as exc:
                raise Unavailable(f"Qdrant Edge refused the write: {exc}") from None
            if self._compaction is not None:
                self._compaction.record(operation)  # replayed onto the compacted copy before it goes live
            if self._rebuild is not None:
                self._rebuild.mirror(operation, ids)  # the new catalog a reindex builds gets every write too
            self.last_write = time.monotonic()
            if self._tuning.flush_writes:  # on disk before the caller (a worker about to ack) hears back
                try:
                    self._shard.flush()
                except (RuntimeError, ValueError) as exc:
                    raise Unavailable(f"Qdrant Edge could not flush the write to disk: {exc}") from None

    def optimize(self, should_stop: Callable[[], bool] = lambda: False) -> bool:
        """Build the HNSW index without stopping searches or writes; True when a new shard went live.

        The live shard is copied (writes wait for the copy, reads go on), the copy optimized in a child process,
        the writes made meanwhile replayed onto it, and the copy made live; the old shard closes once idle.
        """
        with self._write_lock:
            if self._compaction is not None or self._rebuild_wanted:
                return False  # a rebuild optimizes its new shard itself
            self._shard.flush()
            self._compaction = Compaction.start(self._folder, self._folder.live())
        compaction = self._compaction
        try:
            if not compaction.run(lambda: should_stop() or self._rebuild_wanted):
                return False
            optimized = qe.EdgeShard.load(str(compaction.target), self._config)
            try:
                with self._write_lock:
                    compaction.replay(optimized)
                    optimized.flush()
                    old = self._make_live(optimized, compaction.target)
                    self._compaction = None
                    self._laid_out()
            except BaseException:
                optimized.close()  # it never went live: close it before its folder is removed
                raise
            self._retire(old)
            log.info("Qdrant Edge shard optimized: %s live", compaction.target.name)
            return True
        finally:
            with self._write_lock:
                if self._compaction is compaction:
                    compaction.abandon()
                    self._compaction = None

    def _make_live(self, shard: qe.EdgeShard, path: Path) -> qe.EdgeShard:
        """Point CURRENT at path (durably), then swap shard in for searches and writes; the caller holds the write
        lock. CURRENT first: if it cannot be written, nothing was swapped and the old shard stays live."""
        self._folder.make_live(path)
        old, self._shard = self._shard, shard
        return old

    def _retire(self, old: qe.EdgeShard) -> None:
        """Close a swapped-out shard once the searches still reading it are done, and delete its folder."""
        self._readers.wait_until_idle(old)
        old.close()
        with self._write_lock:
            self._folder.remove_stale(keep=self._rebuild.path if self._rebuild else None)

    # -- rebuild (reindex) -------------------------------------------------------------------------------------

    def start_rebuild(self) -> "EdgeRebuild":
        """A new, empty generation beside the live shard; a compaction in progress is stopped first."""
        with self._write_lock:
            if self._rebuild_wanted:
                raise Unavailable(f"a rebuild of the Qdrant Edge store in {self._folder.root} is already running")
            self._rebuild_wanted = True
        while True:  # the compaction's child is killed within a poll (0.2 s) of seeing _rebuild_wanted
            with self._write_lock:
                if self._compaction is None:
                    path = self._folder.new_generation()
                    try:
                        self._rebuild = EdgeRebuild(self, path, self._create_shard(path))
                    except (OSError, RuntimeError, ValueError) as exc:
                        self._rebuild_wanted = False
                        raise Unavailable(f"cannot create a Qdrant Edge shard in {path}: {exc}") from None
                    return self._rebuild
            time.sleep(0.05)

    def _end_rebuild(self, rebuild: "EdgeRebuild") -> None:
        """The caller holds the write lock."""
        if self._rebuild is rebuild:
            self._rebuild = None
            self._rebuild_wanted = False


class EdgeRebuild:
    """A reindex's new generation of an EdgeGarmentStore: written by the reindex and by every live write (the live
    write wins over the reindex's for the same garment), optimized out of process, then made live."""

    def __init__(self, store: EdgeGarmentStore, path: Path, shard: qe.EdgeShard) -> None:
        self.path = path
        self._store = store
        self._shard = shard
        self._written: set[str] = set()  # point ids written live since the rebuild began
        self._compaction: Compaction | None = None  # while the new shard is optimized
        self._broken: str | None = None
        self._ended = False

    def mirror(self, operation: qe.UpdateOperation, ids: Sequence[str]) -> None:
        """Apply a live write to the new shard too; the store's write lock is held."""
        self._written.update(ids)
        if self._compaction is not None:
            self._compaction.record(operation)
            return
        try:
            self._shard.update(operation)
        except (RuntimeError, ValueError) as exc:  # the live write succeeded; this rebuild can no longer go live
            self._broken = str(exc)

    def upsert(self, garments: Sequence[CatalogGarment]) -> None:
        with self._store._write_lock:
            self._check()
            fresh = [g for g in garments if point_id(g.item_id) not in self._written]
            if fresh:
                try:
                    self._shard.update(qe.UpdateOperation.upsert_points(_points(fresh)))
                except (RuntimeError, ValueError) as exc:
                    raise Unavailable(f"Qdrant Edge refused the write to the new shard: {exc}") from None

    def count(self) -> int:
        with self._store._write_lock:
            self._check()
            return int(self._shard.count(qe.CountRequest(exact=True)))

    def missed(self, batch: int) -> Iterator[list[CatalogGarment]]:
        return iter(())  # every live write reached the new shard too

    def go_live(self, should_stop: Callable[[], bool] = lambda: False) -> bool:
        """Optimize the new shard in a child process (live writes recorded, then replayed), then make it live."""
        store = self._store
        with store._write_lock:
            self._check()
            self._shard.flush()
            self._shard.close()
            self._compaction = Compaction(self.path)
        if not self._compaction.run(should_stop):
            return False
        try:
            shard = qe.EdgeShard.load(str(self.path), store._config)
        except (RuntimeError, ValueError) as exc:
            raise Unavailable(f"cannot open the rebuilt Qdrant Edge shard {self.path}: {exc}") from None
        try:
            with store._write_lock:
                self._compaction.replay(shard)
                shard.flush()
                old = store._make_live(shard, self.path)
                store._laid_out()
                self._ended = True
                store._end_rebuild(self)
        except BaseException:
            shard.close()  # it never went live: close it before abandon() removes its folder
            raise
        store._retire(old)
        log.info("Qdrant Edge store rebuilt: %s live", self.path.name)
        return True

    def retire(self) -> None:
        """go_live already retired the former shard."""

    def abandon(self) -> None:
        with self._store._write_lock:
            if self._ended:
                return
            self._ended = True
            if self._compaction is not None:
                self._compaction.abandon()  # kills the child, removes the folder
            else:
                self._shard.close()
                shutil.rmtree(self.path, ignore_errors=True)
            self._store._end_rebuild(self)

    def _check(self) -> None:
        if self._ended:
            raise Unavailable(f"the rebuild in {self.path} was abandoned")
        if self._broken is not None:
            raise Unavailable(f"the new shard {self.path} refused a write ({self._broken}); reindex again")


def _points(garments: Sequence[CatalogGarment]) -> list[qe.Point]:
    return [
        qe.Point(
            point_id(g.item_id), {VISUAL: vector_list(g.embedding), COLOR: vector_list(g.color_vector)}, g.payload()
        )
        for g in garments
    ]


def _config(dim: int, color_dim: int, tuning: EdgeTuning) -> qe.EdgeConfig:
    # Qdrant counts the full-scan threshold in kilobytes of the searched vector.
    full_scan_kb = max(1, int(tuning.full_scan_points * dim * _FLOAT32_KB))
    return qe.EdgeConfig(
        vectors={
            VISUAL: qe.EdgeVectorParams(
                size=dim,
                distance=qe.Distance.Cosine,
                memory=_memory(tuning.vectors_on_disk),
                quantization_config=_quantization(tuning.quantization),
            ),
            # The color vector rescores candidates and is searched only in rare configurations: no graph for it
            # (m=0) halves the optimize time; a search by it is exact. It is small (a few floats): kept in RAM.
            COLOR: qe.EdgeVectorParams(
                size=color_dim,
                distance=qe.Distance.Cosine,
                hnsw_config=qe.HnswIndexConfig(m=0, ef_construct=tuning.hnsw_ef_construct, full_scan_threshold=1),
            ),
        },
        hnsw_config=qe.HnswIndexConfig(
            m=tuning.hnsw_m,
            ef_construct=tuning.hnsw_ef_construct,
            full_scan_threshold=full_scan_kb,
            payload_m=tuning.hnsw_m,
            max_indexing_threads=tuning.indexing_threads,
        ),
        payload_memory=_memory(tuning.payload_on_disk),
        max_search_threads=tuning.search_threads or None,
    )


def _memory(on_disk: bool) -> qe.Memory | None:
    """Cold: on disk, mmapped, paged in on use (the kernel may drop it again); None: Qdrant's default, in RAM."""
    return qe.Memory.Cold if on_disk else None


def _quantization(kind: Quantization) -> qe.ScalarQuantizationConfig | qe.BinaryQuantizationConfig | None:
    """The compressed copy of the visual vector that search walks, pinned in RAM (it is what every hop reads)."""
    if kind == Quantization.INT8:
        # quantile 0.99: the int8 range covers all but the extreme 1% of values (pooled ReLU features are skewed)
        return qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=0.99, memory=qe.Memory.Pinned)
    if kind == Quantization.BINARY:
        return qe.BinaryQuantizationConfig(memory=qe.Memory.Pinned)
    return None


def _search_params(tuning: EdgeTuning, limit: int, exact: bool) -> qe.SearchParams:
    """The graph beam, and rescoring of the quantized candidates from the float32 originals: an exact search
    compares the originals themselves (ignore), so it stays the truth recall is measured against."""
    quantization = None
    if tuning.quantization != Quantization.NONE:
        quantization = qe.QuantizationSearchParams(ignore=exact, rescore=True, oversampling=tuning.oversampling)
    acorn = None
    if tuning.acorn_max_selectivity > 0 and not exact:
        acorn = qe.AcornSearchParams(enable=True, max_selectivity=tuning.acorn_max_selectivity)
    return qe.SearchParams(hnsw_ef=max(tuning.hnsw_ef, limit), exact=exact, quantization=quantization, acorn=acorn)


def _filter(where: StoreFilter) -> qe.Filter | None:
    must = [
        qe.FieldCondition(key=key, match=qe.MatchAny(any=list(values)))
        for key, values in (
            ("group", [g.value for g in where.groups]),
            ("category", list(where.categories)),
            ("color", list(where.colors)),
            ("photo_id", list(where.photos)),
        )
        if values
    ]
    must_not = [qe.HasIdCondition({point_id(i) for i in where.exclude_items})] if where.exclude_items else []
    return qe.Filter(must=must, must_not=must_not) if must or must_not else None
