"""ShardReaders: a shard swapped out is closed only after the last call reading it has left."""

import threading

import pytest

from kloset.core.index.edge.references import ShardReaders

# How long a check that something does NOT happen gives it: a correct ShardReaders passes whatever the value.
_NOT_YET_S = 0.2
_DEADLINE_S = 10


class _Shard:
    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = threading.Event()


class _Store:
    """The store's part: reads take the live shard; retiring swaps a new one in and closes the old once idle."""

    def __init__(self) -> None:
        self.readers = ShardReaders()
        self.live = _Shard("old")

    def read(self, entered: threading.Event, leave: threading.Event, seen: list[_Shard]) -> None:
        """Hold the live shard until leave is set; seen gets the shard, and whether it was open throughout (an
        assert in this thread would not fail the test)."""
        with self.readers.reading(lambda: self.live) as shard:
            open_on_entry = not shard.closed.is_set()
            entered.set()
            left = leave.wait(_DEADLINE_S)
            seen.append((shard, open_on_entry and left and not shard.closed.is_set()))

    def retire(self, old: _Shard) -> None:
        self.readers.wait_until_idle(old)
        old.closed.set()


def _thread(target, *args) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def test_a_retired_shard_closes_only_after_its_last_reader_leaves():
    store = _Store()
    old = store.live
    first_in, second_in, first_out, second_out = (threading.Event() for _ in range(4))
    seen: list[tuple[_Shard, bool]] = []
    readers = [_thread(store.read, first_in, first_out, seen), _thread(store.read, second_in, second_out, seen)]
    assert first_in.wait(_DEADLINE_S) and second_in.wait(_DEADLINE_S)
    assert store.readers.in_flight(old) == 2

    store.live = _Shard("new")
    retiring = _thread(store.retire, old)
    first_out.set()
    readers[0].join(_DEADLINE_S)
    assert store.readers.in_flight(old) == 1
    assert not old.closed.wait(_NOT_YET_S), "closed while a reader was still on it"

    second_out.set()
    readers[1].join(_DEADLINE_S)
    assert old.closed.wait(_DEADLINE_S)
    retiring.join(_DEADLINE_S)
    assert not retiring.is_alive() and not any(r.is_alive() for r in readers)
    assert seen == [(old, True), (old, True)] and store.readers.in_flight(old) == 0


def test_a_reader_of_the_new_shard_does_not_hold_the_old_one_open():
    store = _Store()
    old = store.live
    store.live = _Shard("new")
    entered, leave = threading.Event(), threading.Event()
    seen: list[tuple[_Shard, bool]] = []
    reader = _thread(store.read, entered, leave, seen)
    assert entered.wait(_DEADLINE_S)

    store.retire(old)  # returns at once: nobody reads the old shard

    assert old.closed.is_set() and seen == [] and store.readers.in_flight(store.live) == 1
    leave.set()
    reader.join(_DEADLINE_S)
    assert seen == [(store.live, True)] and store.readers.in_flight(store.live) == 0


def test_a_reader_that_fails_still_leaves_its_shard():
    readers, shard = ShardReaders(), _Shard("live")
    with pytest.raises(RuntimeError), readers.reading(lambda: shard):
        raise RuntimeError("engine failed")
    assert readers.in_flight(shard) == 0
    readers.wait_until_idle(shard)  # returns at once
