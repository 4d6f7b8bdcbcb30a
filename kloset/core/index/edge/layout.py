"""How garments are laid out in a Qdrant Edge shard: its configuration (vectors, quantization, what lives on disk,
the HNSW graph), the payload indexes, the points a garment becomes, and how a search and its filter are asked."""

from collections.abc import Sequence

import qdrant_edge as qe

from kloset.core.index.edge.tuning import EdgeTuning, Quantization
from kloset.core.index.store import COLOR, VISUAL, CatalogGarment, StoreFilter, point_id, vector_list

# Payload fields search filters on; keyword indexes let the planner estimate a filter's size.
KEYWORD_FIELDS = ("item_id", "photo_id", "group", "category", "color", "model_version")
# The fields whose values get HNSW links of their own (payload_m), so a search filtered by them walks a graph
# that stays connected inside the filter. Each such field costs about one more graph build in the optimize (its
# values partition the catalog), so only category: a category can be a few percent of the catalog, where the
# main graph alone loses its way. A group is a third of it or more (the main graph finds it), a color is filtered
# only with a category (an intersection that small is walked with ACORN or scanned exactly), a model version is
# the whole catalog again and a photo a few garments.
HNSW_FIELDS = ("category",)
_FLOAT32_KB = 4 / 1024


def create_shard(path: str, config: qe.EdgeConfig) -> qe.EdgeShard:
    """A new, empty shard with the payload indexes search relies on, flushed."""
    shard = qe.EdgeShard.create(path, config)
    for name in KEYWORD_FIELDS:
        params = qe.KeywordIndexParams(enable_hnsw=name in HNSW_FIELDS)
        shard.update(qe.UpdateOperation.create_field_index(name, params))
    shard.flush()
    return shard


def points(garments: Sequence[CatalogGarment]) -> list[qe.Point]:
    return [
        qe.Point(
            point_id(g.item_id), {VISUAL: vector_list(g.embedding), COLOR: vector_list(g.color_vector)}, g.payload()
        )
        for g in garments
    ]


def shard_config(dim: int, color_dim: int, tuning: EdgeTuning) -> qe.EdgeConfig:
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


def search_params(tuning: EdgeTuning, limit: int, exact: bool) -> qe.SearchParams:
    """The graph beam, and rescoring of the quantized candidates from the float32 originals: an exact search
    compares the originals themselves (ignore), so it stays the truth recall is measured against."""
    quantization = None
    if tuning.quantization != Quantization.NONE:
        quantization = qe.QuantizationSearchParams(ignore=exact, rescore=True, oversampling=tuning.oversampling)
    acorn = None
    if tuning.acorn_max_selectivity > 0 and not exact:
        acorn = qe.AcornSearchParams(enable=True, max_selectivity=tuning.acorn_max_selectivity)
    return qe.SearchParams(hnsw_ef=max(tuning.hnsw_ef, limit), exact=exact, quantization=quantization, acorn=acorn)


def shard_filter(where: StoreFilter) -> qe.Filter | None:
    """StoreFilter's conditions as Qdrant Edge's filter; None for no restriction."""
    must = [qe.FieldCondition(key=key, match=qe.MatchAny(any=values)) for key, values in where.matches()]
    excluded = where.excluded_points()
    must_not = [qe.HasIdCondition(set(excluded))] if excluded else []
    return qe.Filter(must=must, must_not=must_not) if must or must_not else None
