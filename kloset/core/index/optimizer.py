"""Building the store's search index in the background once a bulk load is over, never on a request path."""

import logging
import threading
import time

from kloset.core.errors import KlosetError
from kloset.core.index.store import GarmentStore

log = logging.getLogger(__name__)


class BackgroundOptimizer:
    """Optimizes the store when enough garments are unindexed and no write came for idle_s (the queue drained).

    Until then new garments are searched exactly, which is right but slower as they pile up; optimizing during a
    bulk load would only be redone by the next batch.
    """

    def __init__(self, store: GarmentStore, stop: threading.Event, *, idle_s: float, min_points: int,
                 poll_s: float = 5.0) -> None:  # fmt: skip
        self._store = store
        self._stop = stop
        self._idle_s = idle_s
        self._min_points = min_points
        self._poll_s = min(poll_s, idle_s)
        self._optimized_after: float | None = None  # the store's last_write when it was last optimized
        self.runs = 0

    def due(self) -> bool:
        """Quiet for idle_s, enough unindexed garments, and written since the last run (a store too small for an
        index keeps its garments unindexed: optimizing it again would change nothing)."""
        last_write = getattr(self._store, "last_write", 0.0)
        if last_write == self._optimized_after or time.monotonic() - last_write < self._idle_s:
            return False
        return self._store.unindexed() >= self._min_points

    def run(self) -> None:
        while not self._stop.wait(self._poll_s):
            try:
                if not self.due():
                    continue
                self._optimized_after = getattr(self._store, "last_write", 0.0)
                if self._store.optimize(self._stop.is_set):
                    self.runs += 1
            except KlosetError as exc:  # the store went away: searches and writes report it; try again later
                log.warning("background optimize failed: %s", exc)
            except Exception:
                log.exception("background optimize failed")
