"""A reindex's new generation of the Edge store, built beside the live shard and then made live.

Every live write made while it is built reaches it too (EdgeGarmentStore mirrors it), and a garment written live
since the rebuild began wins over the reindex's copy of it, so nothing written during a reindex is lost by it.
"""

import logging
import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

import qdrant_edge as qe

from kloset.core.errors import Unavailable
from kloset.core.index.edge.compaction import Compaction
from kloset.core.index.edge.layout import points
from kloset.core.index.store import CatalogGarment, point_id

log = logging.getLogger(__name__)


class LiveStore(Protocol):
    """What a rebuild needs of the store whose next generation it is (EdgeGarmentStore)."""

    write_lock: threading.RLock  # held for every write and every swap of the live shard
    config: qe.EdgeConfig

    def swap_in(self, shard: qe.EdgeShard, path: Path) -> qe.EdgeShard:
        """Make shard (at path) the live one and return the former; the caller holds write_lock."""

    def retire_shard(self, old: qe.EdgeShard) -> None:
        """Close a swapped-out shard once idle and delete its folder."""

    def end_rebuild(self, rebuild: "EdgeRebuild") -> None:
        """The rebuild went live or was abandoned; the caller holds write_lock."""


class EdgeRebuild:
    """A reindex's new generation of an EdgeGarmentStore: written by the reindex and by every live write (the live
    write wins over the reindex's for the same garment), optimized out of process, then made live."""

    def __init__(self, store: LiveStore, path: Path, shard: qe.EdgeShard) -> None:
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
        with self._store.write_lock:
            self._check()
            fresh = [g for g in garments if point_id(g.item_id) not in self._written]
            if fresh:
                try:
                    self._shard.update(qe.UpdateOperation.upsert_points(points(fresh)))
                except (RuntimeError, ValueError) as exc:
                    raise Unavailable(f"Qdrant Edge refused the write to the new shard: {exc}") from None

    def count(self) -> int:
        with self._store.write_lock:
            self._check()
            return int(self._shard.count(qe.CountRequest(exact=True)))

    def missed(self, batch: int) -> Iterator[list[CatalogGarment]]:
        return iter(())  # every live write reached the new shard too

    def go_live(self, should_stop: Callable[[], bool] = lambda: False) -> bool:
        """Optimize the new shard in a child process (live writes recorded, then replayed), then make it live."""
        store = self._store
        with store.write_lock:
            self._check()
            self._shard.flush()
            self._shard.close()
            self._compaction = Compaction(self.path)
        if not self._compaction.run(should_stop):
            return False
        try:
            shard = qe.EdgeShard.load(str(self.path), store.config)
        except (RuntimeError, ValueError) as exc:
            raise Unavailable(f"cannot open the rebuilt Qdrant Edge shard {self.path}: {exc}") from None
        try:
            with store.write_lock:
                self._compaction.replay(shard)
                shard.flush()
                old = store.swap_in(shard, self.path)
                self._ended = True
                store.end_rebuild(self)
        except BaseException:
            shard.close()  # it never went live: close it before abandon() removes its folder
            raise
        store.retire_shard(old)
        log.info("Qdrant Edge store rebuilt: %s live", self.path.name)
        return True

    def retire(self) -> None:
        """go_live already retired the former shard."""

    def abandon(self) -> None:
        with self._store.write_lock:
            if self._ended:
                return
            self._ended = True
            if self._compaction is not None:
                self._compaction.abandon()  # kills the child, removes the folder
            else:
                self._shard.close()
                shutil.rmtree(self.path, ignore_errors=True)
            self._store.end_rebuild(self)

    def _check(self) -> None:
        if self._ended:
            raise Unavailable(f"the rebuild in {self.path} was abandoned")
        if self._broken is not None:
            raise Unavailable(f"the new shard {self.path} refused a write ({self._broken}); reindex again")
