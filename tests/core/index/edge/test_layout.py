"""The Edge store's vector layout: int8-quantized search (originals on disk, rescored) finds what exact search
finds, and a store made before quantization opens with every garment, then takes the new layout at an optimize."""

from pathlib import Path

import numpy as np
import qdrant_edge as qe

from kloset.core.garments.labels import Group
from kloset.core.index.edge.layout import KEYWORD_FIELDS
from kloset.core.index.edge.store import EdgeGarmentStore
from kloset.core.index.store import COLOR, VISUAL, CatalogGarment, StoreFilter, point_id, vector_list
from tests.core.index.edge.test_store import DIM, garments

CLUSTERS = 25
PER_CLUSTER = 100  # 2,500 points: past Qdrant's indexing threshold at 1,280-d, so a graph and int8 copy are built


def clustered_catalog(seed: int = 0) -> tuple[list[CatalogGarment], np.ndarray]:
    """Garments in well-separated clusters (non-negative, like pooled features), and each cluster's centroid."""
    rng = np.random.default_rng(seed)
    centroids = rng.gamma(0.6, 1.0, size=(CLUSTERS, DIM)).astype(np.float32)
    out = []
    for i in range(CLUSTERS * PER_CLUSTER):
        vector = centroids[i % CLUSTERS] * rng.lognormal(0.0, 0.5, DIM).astype(np.float32)
        out.append(CatalogGarment(f"p{i}/top", Group.TOP, f"c{i % 5}", "white", "x.jpg", "m", vector,
                                  rng.random(2, dtype=np.float32), photo_id=f"p{i}"))  # fmt: skip
    return out, centroids


def quantized_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if "quantized" in p.name]


def test_quantized_search_returns_the_top_1_of_exact_search(tmp_path):
    catalog, _ = clustered_catalog()
    store = EdgeGarmentStore.open(path=str(tmp_path / "edge"), dim=DIM, color_dim=2)
    try:
        store.upsert(catalog)
        assert store.optimize()
        assert quantized_files(tmp_path / "edge")  # the search below walks int8 vectors, not only the floats
        rng = np.random.default_rng(1)
        for garment in catalog[:: len(catalog) // 40]:  # 40 queries: new views of catalog garments
            query = garment.embedding * rng.lognormal(0.0, 0.1, DIM).astype(np.float32)
            for where in (StoreFilter(), StoreFilter(categories=(garment.category,))):
                walked = store.candidates(query, VISUAL, where, 10)
                exact = store.candidates(query, VISUAL, where, 10, exact=True)
                assert walked[0].garment.item_id == exact[0].garment.item_id == garment.item_id
                # rescored from the originals: the score is the float32 cosine, not the int8 estimate
                assert abs(walked[0].similarity - exact[0].similarity) < 1e-5
    finally:
        store.close()


def make_store_before_quantization(root: Path, catalog: list[CatalogGarment]) -> None:
    """A shard folder as kloset made it before this layout: float32 vectors in RAM, no quantization, every keyword
    field with HNSW links, optimized (so its segments hold a graph), and no LAYOUT file."""
    full_scan_kb = int(10_000 * DIM * 4 / 1024)
    config = qe.EdgeConfig(
        vectors={
            VISUAL: qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Cosine),
            COLOR: qe.EdgeVectorParams(
                size=2,
                distance=qe.Distance.Cosine,
                hnsw_config=qe.HnswIndexConfig(m=0, ef_construct=100, full_scan_threshold=1),
            ),
        },
        hnsw_config=qe.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=full_scan_kb, payload_m=16),
    )
    shard = qe.EdgeShard.create(str(root / "shard-000001"), config)
    for name in KEYWORD_FIELDS:
        shard.update(qe.UpdateOperation.create_field_index(name, qe.PayloadSchemaType.Keyword))
    points = [
        qe.Point(point_id(g.item_id), {VISUAL: vector_list(g.embedding), COLOR: vector_list(g.color_vector)},
                 g.payload())
        for g in catalog
    ]  # fmt: skip
    shard.update(qe.UpdateOperation.upsert_points(points))
    shard.optimize()
    shard.flush()
    shard.close()
    (root / "CURRENT").write_text("shard-000001")


def test_a_store_made_before_quantization_opens_whole_and_is_laid_out_again_at_the_next_optimize(tmp_path):
    root = tmp_path / "edge"
    root.mkdir()
    catalog = garments(2500)
    make_store_before_quantization(root, catalog)
    assert not quantized_files(root)

    store = EdgeGarmentStore.open(path=str(root), dim=DIM, color_dim=2)
    try:
        assert store.count() == 2500  # opened as it is: nothing emptied, every garment searchable
        assert store.candidates(catalog[42].embedding, VISUAL, StoreFilter(), 1)[0].garment.item_id == "p42/top"
        assert store.unindexed() == 2500  # asks the background optimizer to re-lay it out
        assert store.optimize()
        assert store.count() == 2500 and store.unindexed() <= 1
        assert quantized_files(root)
        assert store.retrieve("p2499/top") is not None
        found = store.candidates(catalog[7].embedding, VISUAL, StoreFilter(groups=(Group.TOP,)), 1)
        assert found[0].garment.item_id == "p7/top"
    finally:
        store.close()

    reopened = EdgeGarmentStore.open(path=str(root), dim=DIM, color_dim=2)
    try:  # the layout was recorded: no second re-layout
        assert reopened.count() == 2500 and reopened.unindexed() <= 1
    finally:
        reopened.close()
