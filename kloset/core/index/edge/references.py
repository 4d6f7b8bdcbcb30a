"""The calls reading each Qdrant Edge shard, so a shard swapped out of the store is closed only once idle.

An optimize or a rebuild swaps a new shard in while searches are still reading the old one; closing the old shard
under them would fail those searches. So every read holds a reference to the shard it reads, and the one retiring
the old shard waits for its last reference to go.
"""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

Shard = TypeVar("Shard")


class ShardReaders:
    """How many calls are in flight on each shard (any object: counted by identity, never compared or hashed)."""

    def __init__(self) -> None:
        self._changed = threading.Condition()  # notified whenever a call leaves a shard
        self._in_flight: dict[int, int] = {}  # id(shard) -> calls reading it now

    @contextmanager
    def reading(self, current: Callable[[], Shard]) -> Iterator[Shard]:
        """Hold the shard current() returns for the block. current() is called under the lock that
        wait_until_idle() checks under: a reader that took the old shard just before a swap is always counted
        before the retiring side looks, so the shard cannot close between the reader picking it and counting it."""
        with self._changed:
            shard = current()
            self._in_flight[id(shard)] = self._in_flight.get(id(shard), 0) + 1
        try:
            yield shard
        finally:
            with self._changed:
                self._in_flight[id(shard)] -= 1
                self._changed.notify_all()

    def wait_until_idle(self, shard: object) -> None:
        """Return once no call reads shard, and forget it: the caller closes it, and a later object may reuse its
        id. Only for a shard no longer current (a new reader would hold it again)."""
        with self._changed:
            self._changed.wait_for(lambda: self._in_flight.get(id(shard), 0) == 0)
            self._in_flight.pop(id(shard), None)

    def in_flight(self, shard: object) -> int:
        """Calls reading shard now (for tests and diagnostics)."""
        with self._changed:
            return self._in_flight.get(id(shard), 0)
