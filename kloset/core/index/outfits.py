"""Complete the look: garments of the other group, worn in the catalog with garments like the query.

Garments of one catalog photo form an outfit. For a top, the catalog tops most similar to it each vouch for the
bottom they were photographed with, and for bottoms that look like it (near-duplicates in another photo); a
bottom's score adds up the similarity of the tops vouching for it, so one both several and very similar tops
were worn with ranks first. The reverse for a bottom.
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from kloset.core.garments.labels import Group
from kloset.core.garments.regions import Region
from kloset.core.index.ranking import Hit
from kloset.core.index.search import GarmentResults, SearchEngine, SearchFilter
from kloset.core.index.store import CatalogGarment, GarmentStore, StoreFilter

OTHER_GROUP = {Group.TOP: Group.BOTTOM, Group.BOTTOM: Group.TOP}


@dataclass(frozen=True)
class _Voucher:
    garment: CatalogGarment
    similarity: float


class OutfitFinder:
    def __init__(
        self, engine: SearchEngine, store: GarmentStore, *, similar: int = 20, duplicate_similarity: float = 0.9
    ) -> None:
        self._engine = engine
        self._vouching = engine.allowing(similar)  # the similar garments are the server's choice, not a caller's
        self._store = store
        self._similar = similar  # how many similar garments vouch
        self._duplicate_similarity = duplicate_similarity  # a garment this close to a vouched one is vouched too

    def by_item(self, item_id: str, proposed: SearchFilter, top_k: int = 0) -> GarmentResults:
        """The look completed around a catalog garment: its own outfit vouches first (similarity 1)."""
        self._engine.top_k(top_k)  # a bad request fails before any search
        similar = self._vouching.search_by_item(item_id, SearchFilter(), self._similar)
        item = self._store.retrieve(item_id)
        vouchers = [_Voucher(item, 1.0)] if item is not None else []
        return self._complete(similar, vouchers, proposed, top_k)

    def by_image(
        self, image: bytes, regions: Sequence[Region], proposed: SearchFilter, top_k: int = 0
    ) -> list[GarmentResults]:
        """One completed look per garment of the photo."""
        self._engine.top_k(top_k)  # a bad request fails before the model runs
        answers = self._vouching.search_by_image(image, regions, SearchFilter(), self._similar)
        return [self._complete(similar, [], proposed, top_k) for similar in answers]

    def _complete(
        self, similar: GarmentResults, vouchers: list[_Voucher], proposed: SearchFilter, top_k: int
    ) -> GarmentResults:
        limit = self._engine.top_k(top_k)
        vouchers = vouchers + [_Voucher(h.garment, max(h.visual_similarity, 0.0)) for h in similar.results]
        other = OTHER_GROUP[similar.group]
        where = StoreFilter(
            groups=(other,),
            categories=proposed.categories,
            colors=proposed.colors,
            photos=tuple(dict.fromkeys(v.garment.photo for v in vouchers)),
        )
        worn = self._store.garments(where, limit=4 * len(vouchers) + 8)
        hits = _vouched(vouchers, worn, self._duplicate_similarity)[:limit]
        # The list still describes the query garment (its group, box, labels); its results are of the other group.
        return replace(similar, results=hits, filter=proposed, relaxed=False, relaxation="")


def _vouched(vouchers: list[_Voucher], worn: list[CatalogGarment], duplicate: float) -> list[Hit]:
    """Score each worn garment by the vouchers whose outfit holds it or a near-duplicate of it."""
    if not worn:
        return []
    by_photo: dict[str, list[int]] = {}
    for i, garment in enumerate(worn):
        by_photo.setdefault(garment.photo, []).append(i)
    vectors = np.stack([g.embedding / max(float(np.linalg.norm(g.embedding)), 1e-12) for g in worn])
    alike = vectors @ vectors.T  # worn garment x worn garment
    scores, support = np.zeros(len(worn)), np.zeros(len(worn), dtype=int)
    for voucher in vouchers:
        partners = by_photo.get(voucher.garment.photo, [])
        if not partners:
            continue
        closeness = alike[:, partners].max(axis=1)  # to the nearest garment of the voucher's outfit
        closeness[partners] = 1.0
        vouched = closeness >= duplicate
        scores += np.where(vouched, voucher.similarity * closeness, 0.0)
        support += vouched
    order = sorted(range(len(worn)), key=lambda i: (-scores[i], worn[i].item_id))
    return [Hit(worn[i], float(scores[i]), 0.0, 0.0, int(support[i])) for i in order if support[i] > 0]

