"""How a Qdrant Edge shard indexes and searches: plain values, so configuration can name them without the engine."""

from dataclasses import dataclass


@dataclass(frozen=True)
class EdgeTuning:
    """Each default chosen by `kloset bench store` on 100k garments (docs/benchmarks.md)."""

    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    hnsw_ef: int = 128  # search-time beam; raised to the request's limit when that is larger
    full_scan_points: int = 10_000  # a filter matching fewer points is scanned exactly, not walked by HNSW
    search_threads: int = 0  # 0: Qdrant chooses from the CPU count
    # Flush the live shard after every write, before it returns (and so before a worker acknowledges the job):
    # about 15 ms a batch of 16 garments here. Without it a write reaches disk at the next flush (an optimize,
    # a stop), and a power loss before then loses garments whose jobs were acknowledged.
    flush_writes: bool = True
