"""How a Qdrant Edge shard indexes and searches: plain values, so configuration can name them without the engine."""

from dataclasses import dataclass
from enum import StrEnum


class Quantization(StrEnum):
    """How the visual vector is compressed for search (on Edge and on a server collection alike)."""

    INT8 = "int8"  # scalar: a byte a dimension, 4x smaller than float32
    BINARY = "binary"  # a bit a dimension, 32x smaller; coarse for 1,280-d pooled features
    NONE = "none"  # float32 only: the layout of stores made before quantization


@dataclass(frozen=True)
class EdgeTuning:
    """Each default chosen by `kloset bench store` on 100k and 1M garments (docs/benchmarks.md)."""

    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    hnsw_ef: int = 128  # search-time beam; raised to the request's limit when that is larger
    full_scan_points: int = 10_000  # a filter matching fewer points is scanned exactly, not walked by HNSW
    search_threads: int = 0  # 0: Qdrant chooses from the CPU count
    # Flush the live shard after every write, before it returns (and so before a worker acknowledges the job):
    # about 15 ms a batch of 16 garments here. Without it a write reaches disk at the next flush (an optimize,
    # a stop), and a power loss before then loses garments whose jobs were acknowledged.
    flush_writes: bool = True
    # Search walks the graph on the quantized vectors (kept in RAM) and rescores oversampling x limit candidates
    # from the float32 originals, which stay on disk (mmapped: the kernel pages in what rescoring reads).
    quantization: Quantization = Quantization.INT8
    oversampling: float = 2.0
    vectors_on_disk: bool = True
    payload_on_disk: bool = True  # payload read only for the returned top-k; its keyword indexes stay in RAM
    indexing_threads: int = 0  # threads building the HNSW in the optimize's child process (0: one a core)
    # A filter passing at most this share of a graph's points is walked with ACORN (neighbours of neighbours are
    # explored too), so a filter with no HNSW links of its own (category + color) keeps the graph connected:
    # category + color recall@10 0.60 -> 0.99 at 100k with the intersections walked, p99 4.5 -> 15 ms; 0: off.
    # 0.05 keeps a category (1/12 of a catalog and more) off it: `kloset bench store` at 100k, quiet machine, with
    # 0.4: category p50 7.6 / p99 21.5 ms; with 0.05: 2.9 / 8.9, recall 1.0 either way.
    acorn_max_selectivity: float = 0.05
