"""GarmentStore on Qdrant Edge: Qdrant's own engine in this process, the embedded default.

A folder holds one shard per generation and a CURRENT file naming the live one. Writes go to the live shard at
once (its write-ahead log makes them durable; new points land in a plain segment, searched exactly). Building
the HNSW index is another matter: `EdgeShard.optimize()` holds Python's GIL for its whole run (minutes at 100k
points), which would freeze every request of the process. So `optimize()` here copies the live shard, optimizes
the copy in a child process, replays the writes made meanwhile onto it, and swaps it in (edge_compaction.py).

A reindex builds a new, empty generation beside the live one (rebuild.py): every live write is applied to both,
the new shard is optimized the same way, and CURRENT is switched to it. How a shard is configured and how a
garment, a search and a filter are put to it is layout.py.
"""

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import qdrant_edge as qe

from kloset.core.errors import ModelError, Unavailable
from kloset.core.index.edge.compaction import Compaction, ShardFolder
from kloset.core.index.edge.layout import create_shard, points, search_params, shard_config, shard_filter
from kloset.core.index.edge.rebuild import EdgeRebuild
from kloset.core.index.edge.references import ShardReaders
from kloset.core.index.edge.tuning import EdgeTuning
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


class EdgeGarmentStore:
    """GarmentStore on a Qdrant Edge shard folder (one process per folder)."""

    def __init__(
        self, folder: ShardFolder, dim: int, color_dim: int, tuning: EdgeTuning, metrics: Metrics | None = None
    ) -> None:
        self.metrics = metrics or Metrics()  # the Program's: search and upsert times
        self._folder = folder
        self._sizes = {VISUAL: dim, COLOR: color_dim}
        self._tuning = tuning
        self.config = shard_config(dim, color_dim, tuning)
        self.write_lock = threading.RLock()  # writes, and the swap of a compacted or rebuilt shard, one at a time
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
                shard = create_shard(str(path), self.config)
                self._folder.make_live(path)
                self._folder.write_layout(self._layout())  # empty: every point it takes is stored this way
                log.info("created Qdrant Edge shard %s", path)
            else:
                self._check_vectors(live)
                shard = qe.EdgeShard.load(str(live), self.config)
        except (OSError, RuntimeError, ValueError) as exc:
            self._folder.release()
            raise Unavailable(f"cannot open the Qdrant Edge shard in {self._folder.root}: {exc}") from None
        except BaseException:
            self._folder.release()
            raise
        self._folder.remove_stale()
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
        with self.write_lock:
            if self._compaction is not None:
                self._compaction.abandon()
                self._compaction = None
            self._shard.flush()
            self._shard.close()
            self._folder.release()

    def flush(self) -> None:
        with self.write_lock:
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
            filter=shard_filter(where),
            with_payload=True,
            with_vector=[other],
            params=search_params(self._tuning, limit, exact),
        )
        with self._read() as shard:
            points = shard.query(request)
        return [Candidate(garment_from_point(p), float(p.score)) for p in points]

    def garments(self, where: StoreFilter, limit: int) -> list[CatalogGarment]:
        request = qe.ScrollRequest(limit=limit, filter=shard_filter(where), with_payload=True, with_vector=True)
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
            self._write(qe.UpdateOperation.upsert_points(points(garments)), [point_id(g.item_id) for g in garments])

    def delete(self, item_ids: Sequence[str]) -> None:
        if item_ids:
            ids = [point_id(i) for i in item_ids]
            self._write(qe.UpdateOperation.delete_points(ids), ids)

    def _write(self, operation: qe.UpdateOperation, ids: Sequence[str]) -> None:
        with self.write_lock:
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
        with self.write_lock:
            if self._compaction is not None or self._rebuild_wanted:
                return False  # a rebuild optimizes its new shard itself
            self._shard.flush()
            self._compaction = Compaction.start(self._folder, self._folder.live())
        compaction = self._compaction
        try:
            if not compaction.run(lambda: should_stop() or self._rebuild_wanted):
                return False
            optimized = qe.EdgeShard.load(str(compaction.target), self.config)
            try:
                with self.write_lock:
                    compaction.replay(optimized)
                    optimized.flush()
                    old = self.swap_in(optimized, compaction.target)
                    self._compaction = None
            except BaseException:
                optimized.close()  # it never went live: close it before its folder is removed
                raise
            self.retire_shard(old)
            log.info("Qdrant Edge shard optimized: %s live", compaction.target.name)
            return True
        finally:
            with self.write_lock:
                if self._compaction is compaction:
                    compaction.abandon()
                    self._compaction = None

    def swap_in(self, shard: qe.EdgeShard, path: Path) -> qe.EdgeShard:
        """Point CURRENT at path (durably), then swap shard in for searches and writes, and return the former one;
        the caller holds the write lock. CURRENT first: if it cannot be written, nothing was swapped and the old
        shard stays live. The new shard was optimized with this configuration: record it as the folder's layout."""
        self._folder.make_live(path)
        old, self._shard = self._shard, shard
        self._laid_out()
        return old

    def retire_shard(self, old: qe.EdgeShard) -> None:
        """Close a swapped-out shard once the searches still reading it are done, and delete its folder."""
        self._readers.wait_until_idle(old)
        old.close()
        with self.write_lock:
            self._folder.remove_stale(keep=self._rebuild.path if self._rebuild else None)

    # -- rebuild (reindex) -------------------------------------------------------------------------------------

    def start_rebuild(self) -> EdgeRebuild:
        """A new, empty generation beside the live shard; a compaction in progress is stopped first."""
        with self.write_lock:
            if self._rebuild_wanted:
                raise Unavailable(f"a rebuild of the Qdrant Edge store in {self._folder.root} is already running")
            self._rebuild_wanted = True
        while True:  # the compaction's child is killed within a poll (0.2 s) of seeing _rebuild_wanted
            with self.write_lock:
                if self._compaction is None:
                    path = self._folder.new_generation()
                    try:
                        self._rebuild = EdgeRebuild(self, path, create_shard(str(path), self.config))
                    except (OSError, RuntimeError, ValueError) as exc:
                        self._rebuild_wanted = False
                        raise Unavailable(f"cannot create a Qdrant Edge shard in {path}: {exc}") from None
                    return self._rebuild
            time.sleep(0.05)

    def end_rebuild(self, rebuild: EdgeRebuild) -> None:
        """The caller holds the write lock."""
        if self._rebuild is rebuild:
            self._rebuild = None
            self._rebuild_wanted = False
