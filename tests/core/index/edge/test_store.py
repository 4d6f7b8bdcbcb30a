"""What only the Qdrant Edge backend does: build its index in a child process while reads and writes go on,
keep a complete shard through crashes, lock its folder, and optimize in the background once writes are quiet."""

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from kloset.core.errors import Unavailable
from kloset.core.garments.labels import Group
from kloset.core.index.edge.store import EdgeGarmentStore
from kloset.core.index.optimizer import BackgroundOptimizer
from kloset.core.index.store import VISUAL, CatalogGarment, StoreFilter
from tests.waiting import wait_until

DIM = 1280  # the model's size: enough vectors pass Qdrant's indexing threshold to build a real HNSW graph


def garments(n, start=0, seed=0):
    rng = np.random.default_rng(seed)
    return [
        CatalogGarment(f"p{i}/top", Group.TOP if i % 2 else Group.BOTTOM, f"c{i % 6}", "white", "x.jpg", "m",
                       rng.random(DIM, dtype=np.float32), rng.random(2, dtype=np.float32), photo_id=f"p{i}")
        for i in range(start, start + n)
    ]  # fmt: skip


@pytest.fixture
def store(tmp_path):
    s = EdgeGarmentStore.open(path=str(tmp_path / "edge"), dim=DIM, color_dim=2)
    yield s
    s.close()


def test_optimize_builds_the_index_in_a_child_process_and_keeps_writes_made_meanwhile(store, tmp_path):
    catalog = garments(2500)
    store.upsert(catalog)
    assert store.unindexed() == 2500
    writes = []

    def write_while_optimizing() -> bool:  # polled while the child process runs
        if not writes:
            store.upsert(garments(1, start=9000))
            store.delete(["p7/top"])
            writes.append(store.count())
        return False

    assert store.optimize(write_while_optimizing)
    assert writes == [2500]  # the write happened during the optimize, on the live shard
    assert store.unindexed() <= 1  # the graph covers the catalog; the replayed write waits in a plain segment
    assert store.count() == 2500 and store.retrieve("p9000/top") and store.retrieve("p7/top") is None
    query = catalog[3].embedding
    where = StoreFilter(groups=(Group.TOP,))
    walked = store.candidates(query, VISUAL, where, 10)
    scanned = store.candidates(query, VISUAL, where, 10, exact=True)
    assert walked[0].garment.item_id == "p3/top"
    assert len({c.garment.item_id for c in walked} & {c.garment.item_id for c in scanned}) >= 9
    assert [p.name for p in (tmp_path / "edge").glob("shard-*")] == ["shard-000002"]  # the old one is gone


def test_reads_go_on_while_the_child_process_optimizes(store):
    store.upsert(garments(2500))
    answered, stop = [], threading.Event()

    def search():
        while not stop.is_set():
            answered.append(len(store.candidates(np.ones(DIM, np.float32), VISUAL, StoreFilter(), 5)))

    reader = threading.Thread(target=search)
    reader.start()
    started = time.monotonic()
    try:
        store.optimize()
    finally:
        stop.set()
        reader.join()
    # In-process, EdgeShard.optimize() holds the GIL: not one search would answer until it returned.
    assert len(answered) > 10 and set(answered) == {5}, (len(answered), time.monotonic() - started)


def test_a_stopped_optimize_leaves_the_live_shard_as_it_was(store, tmp_path):
    store.upsert(garments(50))
    assert not store.optimize(lambda: True)
    assert store.count() == 50
    assert [p.name for p in (tmp_path / "edge").glob("shard-*")] == ["shard-000001"]


def test_a_copy_left_by_a_crash_is_removed_at_open_and_the_live_shard_kept(tmp_path):
    s = EdgeGarmentStore.open(path=str(tmp_path / "edge"), dim=DIM, color_dim=2)
    s.upsert(garments(10))
    s.close()
    (tmp_path / "edge" / "shard-000002" / "segments").mkdir(parents=True)  # a half-copied shard
    s = EdgeGarmentStore.open(path=str(tmp_path / "edge"), dim=DIM, color_dim=2)
    try:
        assert s.count() == 10
        assert [p.name for p in (tmp_path / "edge").glob("shard-*")] == ["shard-000001"]
    finally:
        s.close()


@pytest.mark.parametrize("damage", ["dangling", "missing"])
def test_a_damaged_current_never_empties_the_store_and_says_what_to_do(tmp_path, damage):
    """Issue 17 (2): a CURRENT naming a missing folder, or none at all, used to start an empty shard and delete
    the catalog's generation. Now the store refuses to open, deletes nothing, and opens again once CURRENT is set."""
    folder = tmp_path / "edge"
    s = EdgeGarmentStore.open(path=str(folder), dim=DIM, color_dim=2)
    s.upsert(garments(12))
    s.close()
    current = folder / "CURRENT"
    if damage == "dangling":
        current.write_text("shard-000009")
    else:
        current.unlink()
    with pytest.raises(Unavailable, match=r"shard-000001.*echo shard-000001 > .*CURRENT.*nothing was deleted"):
        EdgeGarmentStore.open(path=str(folder), dim=DIM, color_dim=2)
    assert [p.name for p in folder.glob("shard-*")] == ["shard-000001"]
    current.write_text("shard-000001\n")  # what the message says to do
    s = EdgeGarmentStore.open(path=str(folder), dim=DIM, color_dim=2)  # the refused open let go of the lock
    try:
        assert s.count() == 12
    finally:
        s.close()


def test_a_write_is_on_disk_before_it_returns_so_a_kill_before_the_ack_loses_nothing(tmp_path):
    """Issue 17 (3): a worker acks a job right after the store's upsert returns. A process that writes and is then
    SIGKILLed (between upsert and ack) leaves the garments in the folder, so the job is either indexed or, unacked,
    redelivered; with KLOSET_EDGE_FLUSH_WRITES (the default) the write was also flushed before returning."""
    import subprocess
    import sys

    folder = tmp_path / "edge"
    child = f"""
import os, signal
from tests.core.index.edge.test_store import garments, DIM
from kloset.core.index.edge.store import EdgeGarmentStore
store = EdgeGarmentStore.open(path={str(folder)!r}, dim=DIM, color_dim=2)
store.upsert(garments(7))
os.kill(os.getpid(), signal.SIGKILL)  # where the worker would ack
"""
    result = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120,
                            cwd=str(Path(__file__).resolve().parents[4]))  # fmt: skip
    assert result.returncode == -9, result.stderr
    s = EdgeGarmentStore.open(path=str(folder), dim=DIM, color_dim=2)
    try:
        assert s.count() == 7 and s.retrieve("p3/top") is not None
    finally:
        s.close()


def test_a_second_process_cannot_open_the_folder(store, tmp_path):
    with pytest.raises(Unavailable, match="open in another process"):
        EdgeGarmentStore.open(path=str(tmp_path / "edge"), dim=DIM, color_dim=2)


def test_the_background_optimizer_waits_for_quiet_then_runs_once(store):
    stop = threading.Event()
    optimizer = BackgroundOptimizer(store, stop, idle_s=0.3, min_points=2000, poll_s=0.05)
    store.upsert(garments(2100))
    assert not optimizer.due()  # just written: a bulk load may still be going on
    thread = threading.Thread(target=optimizer.run)
    thread.start()
    try:
        wait_until(lambda: optimizer.runs, 60, what="the background optimizer to run", interval_s=0.05)
        assert optimizer.runs == 1 and store.unindexed() == 0
        assert not optimizer.due()  # nothing written since
    finally:
        stop.set()
        thread.join()


_KILLED_AT = """
import os, signal, sys
from tests.core.index.edge.test_store import garments, DIM
from kloset.core.index.edge import compaction as edge_compaction
from kloset.core.index.edge.store import EdgeGarmentStore

step = sys.argv[1]
store = EdgeGarmentStore.open(path=sys.argv[2], dim=DIM, color_dim=2)
store.upsert(garments(40))  # acknowledged before the optimize


def kill():
    os.kill(os.getpid(), signal.SIGKILL)


def patch(owner, name, before=None, after=None):
    original = getattr(owner, name)

    def patched(*args, **kwargs):
        if before:
            before()
        result = original(*args, **kwargs)
        if after:
            after()
        return result

    setattr(owner, name, patched)


# Writes while the child process optimizes the copy: recorded, to be replayed onto it.
patch(edge_compaction.Compaction, "run", before=lambda: store.upsert(garments(10, start=40)))
if step == "optimize":
    patch(edge_compaction.Compaction, "run", after=kill)
elif step == "replay":
    patch(edge_compaction.Compaction, "replay", before=kill)
elif step == "go-live":
    patch(edge_compaction.ShardFolder, "make_live", after=kill)  # CURRENT names the new shard, the old one is there
elif step == "retire":
    patch(edge_compaction.ShardFolder, "remove_stale", before=kill)
store.optimize()
kill()  # every step passed: die anyway, as a power cut would
"""


@pytest.mark.parametrize("step", ["optimize", "replay", "go-live", "retire"])
def test_a_kill_at_any_step_of_an_optimize_keeps_every_acknowledged_garment_once(tmp_path, step):
    """Issue 17 (2): SIGKILL (a child process) at each step of the folder protocol (docs/store.md), then reopen:
    every garment written before and during the optimize is there, once, and one generation is left."""
    import subprocess
    import sys

    folder = tmp_path / "edge"
    result = subprocess.run([sys.executable, "-c", _KILLED_AT, step, str(folder)], capture_output=True, text=True,
                            timeout=300, cwd=str(Path(__file__).resolve().parents[4]))  # fmt: skip
    assert result.returncode == -9, result.stderr[-2000:]
    s = EdgeGarmentStore.open(path=str(folder), dim=DIM, color_dim=2)
    try:
        assert s.count() == 50
        assert {g.item_id for batch in s.scan(100, vectors=False) for g in batch} == {f"p{i}/top" for i in range(50)}
        assert len(list(folder.glob("shard-*"))) == 1
    finally:
        s.close()
