"""Grid search of the ranking weights on the retrieval benchmark's cached model answers.

Run `kloset bench retrieval --data DIR --cache FILE` once; this then reranks the same queries under each weight
setting (candidates are fetched once per query: they depend on the vectors, not on the weights) and prints one
JSON line per setting, so that every default in RankingWeights is chosen by a rerunnable command:

    .venv/bin/python benchmarks/tune_ranking.py --data ../shared/data/ccp --cache /tmp/bench-ccp.pkl
"""

import argparse
import itertools
import json
import pickle
import tempfile
from dataclasses import replace
from pathlib import Path

from kloset.bench.retrieval import evaluate, load_catalog
from kloset.core.garments.color import COLOR_VECTOR_DIM
from kloset.core.index.qdrant_store import QdrantGarmentStore
from kloset.core.index.ranking import FilterPolicy, RankingWeights
from kloset.core.index.search import SearchEngine
from kloset.core.models.backbone import EMBEDDING_DIM


class MemoCandidates:
    """The store's candidates(), remembered per query: reranking needs no second search."""

    def __init__(self, store) -> None:
        self._store = store
        self._seen: dict = {}

    def candidates(self, vector, using, where, limit):
        key = (vector.tobytes(), using, where, limit)
        if key not in self._seen:
            self._seen[key] = self._store.candidates(vector, using, where, limit)
        return self._seen[key]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True)
    args = parser.parse_args()
    catalog = load_catalog(args.data)
    with args.cache.open("rb") as f:
        _, (garments, queries, _) = pickle.load(f)
    with tempfile.TemporaryDirectory() as tmp:
        store = QdrantGarmentStore.open(url=None, api_key=None, path=tmp, collection="tune", dim=EMBEDDING_DIM,
                                        color_dim=COLOR_VECTOR_DIM)  # fmt: skip
        store.upsert(garments)
        memo = MemoCandidates(store)
        base = RankingWeights()
        grid = itertools.product([0.0, 0.1, 0.25, 0.5], [0.0, 0.02, 0.05, 0.1], [0.0, 0.02, 0.05], [0.0, 0.5, 0.8])
        for color, category, color_label, share in grid:
            weights = replace(base, color=color, category=category, color_label=color_label, neighbour_share=share)
            engine = SearchEngine(None, memo, 10, weights=weights, candidates=100)  # type: ignore[arg-type]
            row = {"color": color, "category": category, "color_label": color_label, "neighbour_share": share}
            for mode in ("region", "photo"):
                summary = evaluate(engine, queries, catalog.labels, FilterPolicy.SOFT, mode).summary()
                row[mode] = {k: summary[k] for k in ("recall_at_1", "category_precision_at_10",
                                                     "color_precision_at_10")}  # fmt: skip
            print(json.dumps(row), flush=True)
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
