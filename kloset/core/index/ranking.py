"""Ranking a prefetched candidate set: fused visual + color similarity, and (SOFT) the query's label distribution.

SOFT adds to each candidate's similarity the log-probability of the candidate's own labels under the query's
label distribution: the model's prediction, calibrated (temperature scaling), mixed with the labels of the
query's nearest catalog neighbours only as far as those neighbours are close enough to be the same garment. A
new photo of a garment the catalog holds finds its copy (its label outweighs the model's guess); a photo the
catalog has never seen has no such neighbour, and the model decides. The weights are chosen by cross-validation
on photos outside the catalog (benchmarks/tune_ranking.py, docs/search.md).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from kloset.core.index.store import VISUAL, Candidate, CatalogGarment


class FilterPolicy(StrEnum):
    STRICT = "strict"  # the predicted category and color as a hard filter, relaxed when too few remain
    SOFT = "soft"  # the predicted distributions reweigh candidates; nothing of the group is excluded
    NONE = "none"  # visual + color similarity only


@dataclass(frozen=True)
class RankingWeights:
    """The ranking's knobs; defaults chosen by cross-validation by photo on ../shared/data/ccp, never on the
    queries a figure is reported on (benchmarks/tune_ranking.py, docs/search.md)."""

    visual: float = 1.0
    color: float = 0.5
    category: float = 10.0  # weight of log p(candidate's category) under SOFT: the category decides first
    color_label: float = 1.0  # weight of log p(candidate's color) under SOFT
    category_temperature: float = 2.2  # calibration of the model's category distribution (p ** (1 / T))
    color_temperature: float = 1.85  # ... and of its color distribution
    neighbour_share: float = 0.5  # how much a neighbour that is surely the same garment counts against the model
    neighbour_far: float = 0.75  # visual similarity at or below which a neighbour says nothing of the query
    neighbour_near: float = 0.85  # ... at or above which it counts fully (linear in between)
    neighbour_temperature: float = 0.02  # softmax temperature over the close neighbours' visual similarity
    neighbours: int = 10
    probability_floor: float = 1e-3  # a label the query rules out costs log(floor), not -inf
    # SOFT prefetches, beside the visually nearest garments of the group, the nearest within the fewest categories
    # and colors that hold this much of the calibrated probability: the likeliest labels' garments are ranked
    # even when the visually nearest hundred hold few of them (0: the visually nearest only).
    prefetch_label_mass: float = 0.6

    def closeness(self, similarity: np.ndarray) -> np.ndarray:
        """How surely each neighbour is the query's own garment, 0 to 1, from its visual similarity."""
        if self.neighbour_near <= self.neighbour_far:
            return (similarity > self.neighbour_far).astype(np.float64)
        return np.clip((similarity - self.neighbour_far) / (self.neighbour_near - self.neighbour_far), 0.0, 1.0)


@dataclass(frozen=True)
class QueryGarment:
    """What search knows of the query garment: its vectors and its label distributions."""

    embedding: np.ndarray
    color_vector: np.ndarray | None
    category_probabilities: dict[str, float]
    color_probabilities: dict[str, float]
    labels_known: bool = False  # a catalog garment's labels: the neighbours have nothing to add


@dataclass(frozen=True)
class Hit:
    garment: CatalogGarment
    score: float
    visual_similarity: float
    color_similarity: float
    support: int = 0  # CompleteLook: how many similar garments vouch for this one


def similarities(
    query: QueryGarment, candidates: Sequence[Candidate], using: str
) -> tuple[np.ndarray, np.ndarray]:
    """Visual and color cosine similarity of each candidate: the store's score for the vector it searched by, a dot
    product for the other (0 where a vector is missing)."""
    found = np.array([c.similarity for c in candidates], dtype=np.float64)
    if using == VISUAL:
        return found, np.array([_dot(query.color_vector, c.garment.color_vector) for c in candidates])
    return np.array([_dot(query.embedding, c.garment.embedding) for c in candidates]), found


def calibrated(model: dict[str, float], temperature: float) -> dict[str, float]:
    """The model's distribution at a temperature (p ** (1 / T), renormalised): T > 1 softens an over-confident
    head, T < 1 sharpens a timid one; the argmax never changes."""
    if temperature == 1.0 or not model:
        return dict(model)
    labels = list(model)
    logits = np.log(np.maximum([model[label] for label in labels], 1e-12)) / temperature
    p = np.exp(logits - logits.max())
    p /= p.sum()
    return {label: float(v) for label, v in zip(labels, p, strict=True)}


def label_cover(probabilities: dict[str, float], mass: float) -> tuple[str, ...]:
    """The fewest labels, likeliest first, whose probabilities add up to at least `mass` (none for mass 0)."""
    if mass <= 0:
        return ()
    chosen, total = [], 0.0
    for label, p in sorted(probabilities.items(), key=lambda kv: -kv[1]):
        chosen.append(label)
        total += p
        if total >= mass:
            break
    return tuple(chosen)


def likeliest_labels(query: QueryGarment, w: RankingWeights) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(categories, colors) SOFT also prefetches within: label_cover of the calibrated distributions."""
    if query.labels_known:
        return (), ()
    categories = label_cover(calibrated(query.category_probabilities, w.category_temperature), w.prefetch_label_mass)
    colors = label_cover(calibrated(query.color_probabilities, w.color_temperature), w.prefetch_label_mass)
    return categories, colors


def merge_candidates(*found: Sequence[Candidate]) -> list[Candidate]:
    """Candidates from several prefetches, each garment once (its first appearance), in order."""
    seen: set[str] = set()
    merged = []
    for candidates in found:
        for candidate in candidates:
            if candidate.garment.item_id not in seen:
                seen.add(candidate.garment.item_id)
                merged.append(candidate)
    return merged


def label_distribution(
    model: dict[str, float], neighbour_labels: Sequence[str], neighbour_similarity: np.ndarray, w: RankingWeights
) -> dict[str, float]:
    """Mix the model's distribution with the labels of the neighbours close enough to be the query's garment.

    The vote's share is neighbour_share times the closeness of the closest neighbour: with no neighbour above
    neighbour_far, the model alone decides."""
    if not neighbour_labels or w.neighbour_share <= 0:
        return dict(model)
    closeness = w.closeness(np.asarray(neighbour_similarity, dtype=np.float64))
    share = w.neighbour_share * float(closeness.max())
    if share <= 0:
        return dict(model)
    logits = (neighbour_similarity - neighbour_similarity.max()) / w.neighbour_temperature
    weights = np.exp(logits) * closeness
    weights /= weights.sum()
    votes: dict[str, float] = {}
    for label, weight in zip(neighbour_labels, weights, strict=True):
        votes[label] = votes.get(label, 0.0) + float(weight)
    labels = set(model) | set(votes)
    return {label: (1 - share) * model.get(label, 0.0) + share * votes.get(label, 0.0) for label in labels}


def rank(
    query: QueryGarment, candidates: Sequence[Candidate], policy: FilterPolicy, w: RankingWeights, using: str = VISUAL
) -> list[Hit]:
    """Score and sort candidates found by `using`, best first (ties by item id, so results are reproducible)."""
    if not candidates:
        return []
    garments = [c.garment for c in candidates]
    visual, color = similarities(query, candidates, using)
    scores = w.visual * visual + w.color * color
    if policy is FilterPolicy.SOFT:
        scores = scores + _label_scores(query, garments, visual, w)
    hits = [Hit(g, float(s), float(v), float(k)) for g, s, v, k in zip(garments, scores, visual, color, strict=True)]
    return sorted(hits, key=lambda h: (-h.score, h.garment.item_id))


def _label_scores(
    query: QueryGarment, candidates: Sequence[CatalogGarment], visual: np.ndarray, w: RankingWeights
) -> np.ndarray:
    nearest = np.argsort(-visual, kind="stable")[: 0 if query.labels_known else w.neighbours]
    sims = visual[nearest]
    model_categories = calibrated(query.category_probabilities, w.category_temperature)
    model_colors = calibrated(query.color_probabilities, w.color_temperature)
    categories = label_distribution(model_categories, [candidates[i].category for i in nearest], sims, w)
    colors = label_distribution(model_colors, [candidates[i].color for i in nearest], sims, w)
    floor = w.probability_floor
    # Relative to the likeliest label (whose term is 0): the same ranking, and a candidate of the likeliest
    # category and color keeps the visual + color scale of score that min_score and older clients expect.
    best_category = np.log(max(max(categories.values(), default=1.0), floor))
    best_color = np.log(max(max(colors.values(), default=1.0), floor))
    return np.array(
        [
            w.category * (np.log(max(categories.get(c.category, 0.0), floor)) - best_category)
            + w.color_label * (np.log(max(colors.get(c.color, 0.0), floor)) - best_color)
            for c in candidates
        ]
    )


def _dot(a: np.ndarray | None, b: np.ndarray | None) -> float:
    if a is None or b is None or len(a) != len(b):
        return 0.0
    return float(np.dot(a, b))
