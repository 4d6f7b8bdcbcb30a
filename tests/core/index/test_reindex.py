"""Reindexing a catalog with a new model into a new catalog beside the live one, on Qdrant Edge and qdrant-client
local mode (the code path of a Qdrant server: an alias switched to a new collection, then a catch-up pass)."""

import dataclasses
import threading

import pytest
from qdrant_client import QdrantClient, models

from kloset.core.classifier import AttributeEngine
from kloset.core.garments.color import COLOR_VECTOR_DIM
from kloset.core.index.indexing import GarmentIndexer
from kloset.core.index.reindex import CatalogReindexer, ReindexAborted, ReindexRunning
from kloset.core.index.store import VISUAL, StoreFilter
from kloset.core.ingest.blobs import BlobStore
from kloset.core.ingest.jobs import JobSpec
from kloset.core.limits import InputLimits
from kloset.core.models.attributes import AttributeModel
from kloset.core.models.backbone import EMBEDDING_DIM
from tests.core.index.backends import BACKENDS, open_backend

LIMITS = InputLimits(max_pixels=1_000_000, max_label_bytes=1_000_000)

STEMS = [f"{i:04d}" for i in range(1, 10)]  # every 10th sample photo holds only a dress, which is not indexed


@pytest.fixture(scope="module")
def old_model(tiny_model_dir):
    return AttributeEngine(AttributeModel.load(tiny_model_dir), 1_000_000)


@pytest.fixture(scope="module")
def new_model(second_model_dir):
    return AttributeEngine(AttributeModel.load(second_model_dir), 1_000_000)


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def blobs(tmp_path):
    return BlobStore(tmp_path / "blobs")


@pytest.fixture
def store(backend, tmp_path, blobs, old_model, sample_catalog):
    """A catalog of the sample photos indexed by the old model."""
    s = open_backend(backend, tmp_path, dim=EMBEDDING_DIM, color_dim=COLOR_VECTOR_DIM)
    index(old_model, s, blobs, sample_catalog, STEMS)
    yield s
    s.close()


def index(model, store, blobs, sample_catalog, stems):
    indexer = GarmentIndexer(model, store, blobs, LIMITS)
    specs = [
        JobSpec(blobs.put((sample_catalog / "images" / f"{stem}.jpg").read_bytes()),
                blobs.put((sample_catalog / "labels" / f"{stem}.json").read_bytes()), f"shop/{stem}", f"{stem}.jpg", ())
        for stem in stems
    ]  # fmt: skip
    outcomes = indexer.index_batch([indexer.prepare(spec) for spec in specs])
    assert not [o for o in outcomes if isinstance(o, Exception)]


def reindexer(model, store, blobs, batch_photos=4):
    return CatalogReindexer(model, store, blobs, LIMITS, batch_photos=batch_photos)


def catalog(store):
    return {g.item_id: g for batch in store.scan(100) for g in batch}


def test_a_reindex_switches_every_garment_to_the_new_model_and_keeps_ids_labels_and_boxes(
    store, blobs, old_model, new_model
):
    before = catalog(store)
    assert store.model_versions() == {old_model.model_version: len(before)}
    progress = []
    summary = reindexer(new_model, store, blobs).run(lambda done, total: progress.append((done, total)))
    after = catalog(store)
    assert store.model_versions() == summary.model_versions == {new_model.model_version: len(before)}
    assert (summary.re_embedded, summary.copied, summary.failed) == (len(before), 0, 0)
    assert summary.model_version == new_model.model_version and summary.seconds > 0
    assert progress[-1] == (len(before), len(before)) and len(progress) > 1
    assert after.keys() == before.keys()
    for item_id, old in before.items():
        new = after[item_id]
        assert (new.category, new.color, new.box, new.label_digest) == (old.category, old.color, old.box,
                                                                        old.label_digest)  # fmt: skip
        assert new.label_digest and new.model_version != old.model_version  # the heads changed, not the backbone
    query = after["shop/0003/top"].embedding
    assert store.candidates(query, VISUAL, StoreFilter(), 1)[0].garment.item_id == "shop/0003/top"
    again = reindexer(new_model, store, blobs).run()
    assert again.re_embedded <= 2 and again.copied == len(before) - again.re_embedded  # the first photo: the version


def test_garments_written_during_the_rebuild_survive_it(store, blobs, new_model, sample_catalog):
    written = []

    def worker_writes_meanwhile(done, total):
        if not written:  # a worker indexing new photos into the live catalog while the reindex runs
            index(new_model, store, blobs, sample_catalog, ["0011", "0012"])
            written.append(store.count())

    summary = reindexer(new_model, store, blobs).run(worker_writes_meanwhile)
    after = catalog(store)
    assert {"shop/0011/top", "shop/0012/top"} <= after.keys()
    assert len(after) == written[0] and store.model_versions() == {new_model.model_version: len(after)}
    assert summary.done <= len(after)


class PhasedStore:
    """The store, with a catalog photo indexed into it live at each phase of a reindex: during the scan, right
    before the rebuild starts, during re-embedding (from the progress callback) and at the switch."""

    def __init__(self, store, write) -> None:
        self._store = store
        self._write = write

    def scan(self, batch, vectors=True):
        for index, garments in enumerate(self._store.scan(batch, vectors=vectors)):
            if index == 0:
                self._write("0013")  # during the scan
            yield garments

    def start_rebuild(self):
        self._write("0014")  # the old window: after the scan began, before the rebuild (the scan now comes after)
        return PhasedRebuild(self._store.start_rebuild(), self._write)

    def __getattr__(self, name):
        return getattr(self._store, name)


class PhasedRebuild:
    def __init__(self, rebuild, write) -> None:
        self._rebuild = rebuild
        self._write = write

    def go_live(self, should_stop=lambda: False):
        self._write("0016")  # at the switch
        return self._rebuild.go_live(should_stop)

    def __getattr__(self, name):
        return getattr(self._rebuild, name)


def test_a_garment_written_at_any_phase_of_a_reindex_is_there_afterwards_once(store, blobs, new_model, sample_catalog):
    """Issue 17 (1): a garment upserted between the scan and the start of the rebuild was in neither, and was gone
    after the switch."""
    written: list[str] = []

    def write(stem: str) -> None:
        if stem not in written:
            index(new_model, store, blobs, sample_catalog, [stem])
            written.append(stem)

    def during_re_embedding(done, total):
        if done:
            write("0015")

    before = len(catalog(store))
    summary = CatalogReindexer(new_model, PhasedStore(store, write), blobs, LIMITS, batch_photos=4).run(
        during_re_embedding
    )
    assert written == ["0014", "0013", "0015", "0016"]
    after = catalog(store)
    extra = {f"shop/{stem}/{group}" for stem in written for group in ("top", "bottom")}
    assert extra <= after.keys()
    assert store.count() == len(after) == before + len(extra)  # each garment once
    assert store.model_versions() == {new_model.model_version: len(after)} == summary.model_versions


def test_a_garment_whose_photo_is_gone_is_reported_and_carried_over(store, blobs, old_model, new_model, tmp_path):
    gone = catalog(store)["shop/0002/top"].image_digest
    (tmp_path / "blobs" / gone[:2] / gone[2:]).unlink()
    summary = reindexer(new_model, store, blobs).run()
    lost = sorted(f.item_id for f in summary.failures)
    assert lost == sorted(i for i in catalog(store) if i.startswith("shop/0002/")) and summary.failed == len(lost)
    assert all("missing" in f.reason for f in summary.failures)
    assert store.model_versions() == {new_model.model_version: summary.re_embedded, old_model.model_version: len(lost)}
    assert store.retrieve("shop/0002/top").model_version == old_model.model_version  # kept, not dropped


def test_garments_indexed_before_labels_were_kept_are_re_embedded_from_their_box(store, blobs, new_model):
    before = catalog(store)
    store.upsert([dataclasses.replace(g, label_digest="") for g in before.values()])
    summary = reindexer(new_model, store, blobs).run()
    after = catalog(store)
    assert summary.re_embedded == len(before) and after.keys() == before.keys()
    assert all((after[i].box, after[i].category) == (g.box, g.category) for i, g in before.items())


def test_a_stopped_reindex_leaves_the_old_catalog_live_and_removes_the_new_one(
    store, backend, blobs, old_model, new_model, tmp_path
):
    before = store.model_versions()
    calls = []
    with pytest.raises(ReindexAborted, match="old catalog is still live"):
        reindexer(new_model, store, blobs).run(lambda done, total: calls.append(done), should_stop=lambda: bool(calls))
    assert store.model_versions() == before and store.count() == sum(before.values())
    assert catalogs(backend, store, tmp_path) == 1
    for blob in (tmp_path / "blobs").glob("*/*"):
        blob.unlink()
    with pytest.raises(ReindexAborted, match=r"could not be re-embedded \(more than 0\).* x blob .* is missing"):
        reindexer(new_model, store, blobs).run(max_failures=0)
    assert store.model_versions() == before and catalogs(backend, store, tmp_path) == 1


def catalogs(backend, store, tmp_path) -> int:
    """Shard generations (Edge) or collections (local mode) on disk."""
    if backend == "edge":
        return len(list((tmp_path / "edge").glob("shard-*")))
    return len(store._client.get_collections().collections)


def test_one_reindex_at_a_time(store, blobs, new_model):
    reindex = reindexer(new_model, store, blobs)
    inside, release, outcome = threading.Event(), threading.Event(), []

    def hold(done, total):
        inside.set()
        release.wait(30)

    thread = threading.Thread(target=lambda: outcome.append(reindex.run(hold)))
    thread.start()
    assert inside.wait(30)
    with pytest.raises(ReindexRunning, match="already running"):
        reindex.run()
    release.set()
    thread.join(60)
    assert outcome and outcome[0].failed == 0


def test_edge_stops_a_compaction_in_progress_first(tmp_path, blobs, old_model, new_model,
                                                                       sample_catalog):  # fmt: skip
    store = open_backend("edge", tmp_path, dim=EMBEDDING_DIM, color_dim=COLOR_VECTOR_DIM)
    try:
        index(old_model, store, blobs, sample_catalog, STEMS)
        optimized = []
        compacting = threading.Thread(target=lambda: optimized.append(store.optimize()))
        compacting.start()
        while store._compaction is None and compacting.is_alive():
            pass
        summary = reindexer(new_model, store, blobs).run()
        compacting.join(30)
        assert optimized == [False] and summary.failed == 0
        assert store.model_versions() == {new_model.model_version: store.count()}
        assert [p.name for p in (tmp_path / "edge").glob("shard-*")] == ["shard-000002"]  # the compaction's is gone
    finally:
        store.close()


def test_local_mode_keeps_the_catalog_behind_an_alias_and_adopts_a_legacy_collection(
    tmp_path, blobs, old_model, new_model, sample_catalog
):
    client = QdrantClient(path=str(tmp_path / "local"))  # as kloset before aliases made it: a plain collection
    vectors = {name: models.VectorParams(size=size, distance=models.Distance.COSINE)
               for name, size in (("visual", EMBEDDING_DIM), ("color", COLOR_VECTOR_DIM))}  # fmt: skip
    client.create_collection("garments", vectors_config=vectors)
    client.close()
    store = open_backend("local", tmp_path, dim=EMBEDDING_DIM, color_dim=COLOR_VECTOR_DIM)
    try:
        index(old_model, store, blobs, sample_catalog, STEMS)
        assert store._client.get_aliases().aliases == []  # the legacy collection is used as it is
        reindexer(new_model, store, blobs).run()
        [alias] = store._client.get_aliases().aliases
        assert (alias.alias_name, alias.collection_name) == ("garments", "garments-000001")
        assert [c.name for c in store._client.get_collections().collections] == ["garments-000001"]
        reindexer(new_model, store, blobs).run()
        [alias] = store._client.get_aliases().aliases
        assert alias.collection_name == "garments-000002"
        assert [c.name for c in store._client.get_collections().collections] == ["garments-000002"]
        count = store.count()
    finally:
        store.close()
    reopened = open_backend("local", tmp_path, dim=EMBEDDING_DIM, color_dim=COLOR_VECTOR_DIM)
    try:
        assert reopened.count() == count and reopened.model_versions() == {new_model.model_version: count}
    finally:
        reopened.close()
