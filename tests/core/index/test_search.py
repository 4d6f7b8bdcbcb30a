"""SearchEngine and OutfitFinder over each real store backend (Qdrant Edge, qdrant-client local mode), on
hand-built catalogs of known answers: ranking, filters and grouping must agree on both."""

import numpy as np
import pytest

from kloset.core.errors import InvalidInput, NotFound
from kloset.core.garments.labels import Group
from kloset.core.index.outfits import OutfitFinder
from kloset.core.index.ranking import (
    FilterPolicy,
    QueryGarment,
    RankingWeights,
    calibrated,
    label_distribution,
    rank,
)
from kloset.core.index.search import SearchEngine, SearchFilter, SearchOptions, strict_steps
from kloset.core.index.store import VISUAL, Candidate, CatalogGarment, StoreFilter
from kloset.core.models.predictions import GarmentPrediction
from tests.core.index.backends import BACKENDS, open_backend

DIM = 4


def unit(*values) -> np.ndarray:
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def garment(item_id, category, color, vector, group=Group.TOP, color_vector=(1.0, 0.0)):
    return CatalogGarment(item_id, group, category, color, f"{item_id}.jpg", "m", unit(*vector), unit(*color_vector))


class NoClassifier:
    def classify(self, image, regions):
        raise AssertionError("search by item must not classify anything")


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    s = open_backend(request.param, tmp_path, dim=DIM, color_dim=2)
    yield s
    s.close()


def engine(store, policy=FilterPolicy.SOFT, **weights):
    return SearchEngine(NoClassifier(), store, 3, policy=policy, weights=RankingWeights(**weights), candidates=50)


def ids(results):
    return [h.garment.item_id for h in results.results]


@pytest.fixture
def catalog(store):
    """Query q/top is a white blouse; only one other white blouse exists, so a strict filter must relax."""
    store.upsert(
        [
            garment("q/top", "blouse", "white", (1, 0, 0, 0)),
            garment("a/top", "blouse", "white", (1, 0.5, 0, 0)),
            garment("b/top", "blouse", "black", (1, 0.2, 0, 0)),
            garment("c/top", "shirt", "white", (1, 0.1, 0, 0)),
            garment("d/top", "shirt", "black", (1, 0.3, 0, 0)),
            garment("e/top", "knitwear", "red", (1, 0.4, 0, 0)),
            garment("x/bottom", "skirt", "white", (1, 0, 0, 0), group=Group.BOTTOM),
        ]
    )
    return store


def test_strict_keeps_the_predicted_category_and_color_when_enough_remain(catalog):
    answer = engine(catalog, FilterPolicy.STRICT).search_by_item("q/top", SearchFilter(), top_k=1)
    assert ids(answer) == ["a/top"] and not answer.relaxed
    assert answer.filter == SearchFilter(("blouse",), ("white",)) and answer.policy is FilterPolicy.STRICT


def test_strict_relaxes_in_the_stated_order_and_says_so(catalog):
    search = engine(catalog, FilterPolicy.STRICT)
    # A catalog item's labels are certain: its second color has no probability, so "any color" comes next.
    answer = search.search_by_item("q/top", SearchFilter(), top_k=2)
    assert answer.relaxed and answer.relaxation == "any color"
    assert answer.filter == SearchFilter(("blouse",), ()) and ids(answer) == ["b/top", "a/top"]
    answer = search.search_by_item("q/top", SearchFilter(), top_k=5)
    assert answer.relaxation == "any category of the group" and len(answer.results) == 5
    assert "x/bottom" not in ids(answer)  # never outside the garment's group


def test_strict_steps_try_the_second_color_before_any_color():
    from kloset.core.index.search import _Query

    query = _Query(QueryGarment(unit(1, 0, 0, 0), None, {}, {}), Group.TOP, "blouse", "white", [("blouse", 0.6)],
                   [("white", 0.5), ("beige", 0.3)], None)  # fmt: skip
    steps = strict_steps(SearchFilter(), query)
    assert [s.relaxation for s in steps] == ["", "second color", "any color", "any category of the group"]
    assert steps[1].filter == SearchFilter(("blouse",), ("white", "beige"))
    # What the caller named is never relaxed: only the predicted half of the filter widens.
    steps = strict_steps(SearchFilter(colors=("red",)), query)
    assert [(s.relaxation, s.filter) for s in steps] == [
        ("", SearchFilter(("blouse",), ("red",))),
        ("any category of the group", SearchFilter((), ("red",))),
    ]


@pytest.mark.parametrize("policy", list(FilterPolicy))
def test_an_explicit_filter_is_never_relaxed_under_any_policy(catalog, policy):
    answer = engine(catalog, policy).search_by_item("q/top", SearchFilter(colors=("black",)), top_k=10)
    assert sorted(ids(answer)) == ["b/top", "d/top"]  # short, because the caller asked for black only
    assert all(h.garment.color == "black" for h in answer.results)


def test_none_ranks_by_visual_similarity_and_soft_by_the_labels_too(catalog):
    plain = engine(catalog, FilterPolicy.NONE, color=0.0).search_by_item("q/top", SearchFilter(), top_k=5)
    assert ids(plain) == ["c/top", "b/top", "d/top", "e/top", "a/top"]
    assert not plain.relaxed and plain.filter == SearchFilter()
    soft = engine(catalog, FilterPolicy.SOFT, color=0.0, category=0.1, color_label=0.05)
    answer = soft.search_by_item("q/top", SearchFilter(), top_k=5)
    assert ids(answer)[:2] == ["a/top", "b/top"]  # the white blouse, then the black one, before the closer shirts
    assert set(ids(answer)) == set(ids(plain))  # soft excludes nothing
    assert answer.results[1].score < answer.results[1].visual_similarity  # log p(black) < 0 lowers b


def test_color_similarity_is_fused_with_its_weight(store):
    store.upsert(
        [
            garment("q/top", "blouse", "white", (1, 0, 0, 0), color_vector=(1, 0)),
            garment("near-shape/top", "blouse", "white", (1, 0.1, 0, 0), color_vector=(0, 1)),
            garment("near-color/top", "blouse", "white", (1, 0.3, 0, 0), color_vector=(1, 0)),
        ]
    )
    assert ids(engine(store, FilterPolicy.NONE, color=0.0).search_by_item("q/top", SearchFilter(), 1)) == [
        "near-shape/top"
    ]
    answer = engine(store, FilterPolicy.NONE, color=0.5).search_by_item("q/top", SearchFilter(), 1)
    assert ids(answer) == ["near-color/top"]
    hit = answer.results[0]
    assert hit.score == pytest.approx(hit.visual_similarity + 0.5 * hit.color_similarity)


def test_search_by_item_excludes_itself_pages_and_filters_by_score(catalog):
    search = engine(catalog, FilterPolicy.NONE)
    everything = ids(search.search_by_item("q/top", SearchFilter(), top_k=10))
    assert "q/top" not in everything and len(everything) == 5
    second_page = search.search_by_item("q/top", SearchFilter(), top_k=2, options=SearchOptions(offset=2))
    assert ids(second_page) == everything[2:4]
    full = search.search_by_item("q/top", SearchFilter(), top_k=10)
    threshold = full.results[2].score
    above = search.search_by_item("q/top", SearchFilter(), top_k=10, options=SearchOptions(min_score=threshold))
    assert ids(above) == everything[:3]


def test_group_by_photo_keeps_the_best_garment_of_each_photo(store):
    store.upsert(
        [
            garment("q/top", "blouse", "white", (1, 0, 0, 0)),
            garment("p1/top", "blouse", "white", (1, 0.1, 0, 0)),
            garment("p1/top-2", "blouse", "white", (1, 0.15, 0, 0)),  # a second top of photo p1
            garment("p2/top", "blouse", "white", (1, 0.3, 0, 0)),
        ]
    )
    search = engine(store, FilterPolicy.NONE)
    assert ids(search.search_by_item("q/top", SearchFilter(), 3)) == ["p1/top", "p1/top-2", "p2/top"]
    grouped = search.search_by_item("q/top", SearchFilter(), 3, SearchOptions(group_by_photo=True))
    assert ids(grouped) == ["p1/top", "p2/top"]


def test_bad_requests_are_invalid_and_unknown_items_not_found(catalog):
    search = engine(catalog)
    with pytest.raises(InvalidInput, match="top_k"):
        search.search_by_item("q/top", SearchFilter(), top_k=5000)
    with pytest.raises(InvalidInput, match="offset"):
        search.search_by_item("q/top", SearchFilter(), options=SearchOptions(offset=-1))
    with pytest.raises(NotFound) as caught:
        search.search_by_item("x" * 20_000, SearchFilter())
    assert len(str(caught.value)) < 200


def test_label_distribution_follows_a_near_duplicate_neighbour():
    weights = RankingWeights(neighbour_share=0.5, neighbour_temperature=0.02)
    mixed = label_distribution({"blouse": 0.7, "shirt": 0.3}, ["shirt", "blouse", "blouse"],
                               np.array([0.97, 0.80, 0.79]), weights)  # fmt: skip
    assert mixed["shirt"] > mixed["blouse"] and sum(mixed.values()) == pytest.approx(1.0)


def test_the_neighbour_vote_gives_way_to_the_model_when_no_neighbour_is_close():
    weights = RankingWeights(neighbour_share=0.9, neighbour_far=0.8, neighbour_near=0.9, neighbour_temperature=0.02)
    model = {"blouse": 0.7, "shirt": 0.3}
    # A new photo: its nearest catalog garments are merely alike (0.78 and below), so the model decides alone.
    far = label_distribution(model, ["shirt", "shirt", "shirt"], np.array([0.78, 0.75, 0.70]), weights)
    assert far == pytest.approx(model)
    # Halfway between far and near, the vote counts half its share; at near or above, its whole share.
    half = label_distribution(model, ["shirt", "blouse"], np.array([0.85, 0.70]), weights)
    assert half["shirt"] == pytest.approx(0.55 * 0.3 + 0.45 * 1.0)
    close = label_distribution(model, ["shirt", "blouse"], np.array([0.97, 0.70]), weights)
    assert close["shirt"] == pytest.approx(0.1 * 0.3 + 0.9 * 1.0)


def test_calibration_changes_the_confidence_never_the_prediction():
    model = {"blouse": 0.6, "shirt": 0.3, "top": 0.1}
    soft, sharp = calibrated(model, 2.0), calibrated(model, 0.5)
    assert max(soft, key=soft.get) == max(sharp, key=sharp.get) == "blouse"
    assert soft["blouse"] < 0.6 < sharp["blouse"] and sum(soft.values()) == pytest.approx(1.0)
    assert calibrated(model, 1.0) == model


def test_soft_with_the_shipped_weights_fills_the_list_with_the_likeliest_labels_first(store):
    """With no close neighbour, the shipped SOFT puts every garment of the predicted category and color (here
    fewer than top_k) before the others, and still fills the list from the rest of the group: never short."""
    store.upsert([garment(f"p{i}/top", "blouse", "white", (1, 0.1 * i, 0, 0)) for i in range(2)]
                 + [garment(f"s{i}/top", "shirt", "black", (1, 0, 0.1 * i, 0.05)) for i in range(5)])  # fmt: skip
    query = QueryGarment(unit(0, 1, 0, 0), None, {"blouse": 0.8, "shirt": 0.2}, {"white": 0.7, "black": 0.3})
    candidates = store.candidates(query.embedding, VISUAL, StoreFilter(groups=(Group.TOP,)), 50)
    hits = rank(query, candidates, FilterPolicy.SOFT, RankingWeights())
    assert len(hits) == 7
    assert [h.garment.category for h in hits[:2]] == ["blouse", "blouse"]


def test_soft_finds_the_likeliest_labels_beyond_the_visually_nearest(store):
    """The visually nearest garments are all of another category and color; SOFT's second prefetch (within the
    likeliest labels) still brings the predicted ones to the top, while the visual prefetch alone would miss them."""
    # Alike (cosine about 0.64), not the query's own garment (below KLOSET_RANK_NEIGHBOUR_FAR): no vote.
    near = [garment(f"s{i:02d}/top", "shirt", "black", (1, 1.2 + 0.01 * i, 0, 0)) for i in range(60)]
    far = [garment(f"b{i}/top", "blouse", "white", (0.2, 0, 1, 0.1 * i)) for i in range(3)]
    store.upsert(near + far)
    prediction = GarmentPrediction(Group.TOP, {"blouse": 0.9, "shirt": 0.1}, {"white": 0.9, "black": 0.1},
                                   unit(1, 0, 0, 0), unit(1, 0))  # fmt: skip
    soft = engine(store).search_prediction(prediction, SearchFilter(), 3)
    assert sorted(h.garment.item_id for h in soft.results) == ["b0/top", "b1/top", "b2/top"]
    visual_only = engine(store, prefetch_label_mass=0.0).search_prediction(prediction, SearchFilter(), 3)
    assert not any(h.garment.item_id.startswith("b") for h in visual_only.results)


def test_soft_scores_the_likeliest_labels_on_the_similarity_scale_min_score_expects():
    """The label terms are relative to the likeliest label: a candidate of the predicted category and color scores
    its visual + color similarity (as under NONE), others less; so a client's min_score keeps its meaning."""
    w = RankingWeights()
    query = QueryGarment(unit(1, 0, 0, 0), unit(1, 0), {"blouse": 0.7, "shirt": 0.3}, {"white": 0.8, "black": 0.2})
    # Alike, not the same garment (below KLOSET_RANK_NEIGHBOUR_FAR): no neighbour vote, the model decides.
    likeliest = Candidate(garment("a/top", "blouse", "white", (1, 0.2, 0, 0)), 0.6)
    other = Candidate(garment("b/top", "shirt", "black", (1, 0.1, 0, 0)), 0.65)
    soft = {h.garment.item_id: h for h in rank(query, [likeliest, other], FilterPolicy.SOFT, w)}
    none = {h.garment.item_id: h for h in rank(query, [likeliest, other], FilterPolicy.NONE, w)}
    assert soft["a/top"].score == pytest.approx(none["a/top"].score) == pytest.approx(0.6 + w.color * 1.0)
    assert soft["b/top"].score < soft["a/top"].score < none["b/top"].score + 1


def test_rank_is_reproducible_on_ties():
    query = QueryGarment(unit(1, 0, 0, 0), None, {}, {})
    tied = [Candidate(garment(f"{c}/top", "blouse", "white", (1, 0, 0, 0)), 1.0) for c in "cab"]
    assert [h.garment.item_id for h in rank(query, tied, FilterPolicy.NONE, RankingWeights())] == [
        "a/top", "b/top", "c/top"
    ]  # fmt: skip


def test_complete_look_ranks_the_bottoms_worn_with_the_most_similar_tops(store):
    store.upsert(
        [
            garment("p1/top", "blouse", "white", (1, 0, 0, 0)),
            garment("p1/bottom", "skirt", "black", (0, 1, 0, 0), group=Group.BOTTOM),
            garment("p2/top", "blouse", "white", (1, 0.2, 0, 0)),  # like p1's top
            garment("p2/bottom", "skirt", "black", (0, 1, 0.2, 0), group=Group.BOTTOM),  # like p1's bottom
            garment("p3/top", "t_shirt", "red", (0.2, 0, 0, 1)),  # unlike p1's top
            garment("p3/bottom", "jeans", "blue", (0, 0, 1, 0), group=Group.BOTTOM),
        ]
    )
    outfits = OutfitFinder(engine(store, FilterPolicy.NONE), store, similar=5, duplicate_similarity=0.9)
    look = outfits.by_item("p1/top", SearchFilter(), top_k=5)
    assert look.group is Group.TOP and all(h.garment.group is Group.BOTTOM for h in look.results)
    assert [(h.garment.item_id, h.support) for h in look.results] == [
        ("p1/bottom", 2), ("p2/bottom", 2), ("p3/bottom", 1)
    ]  # fmt: skip
    assert look.results[0].score > look.results[1].score > look.results[2].score
    jeans_only = outfits.by_item("p1/top", SearchFilter(categories=("jeans",)), top_k=5)
    assert [h.garment.item_id for h in jeans_only.results] == ["p3/bottom"]
    reverse = outfits.by_item("p3/bottom", SearchFilter(), top_k=1)
    assert reverse.group is Group.BOTTOM and [h.garment.item_id for h in reverse.results] == ["p3/top"]


def test_top_k_is_bounded_by_max_top_k_and_0_asks_for_the_default(catalog):
    search = SearchEngine(NoClassifier(), catalog, 2, max_top_k=4)
    assert len(search.search_by_item("q/top", SearchFilter(), top_k=4).results) == 4
    assert len(search.search_by_item("q/top", SearchFilter(), top_k=0).results) == 2
    message = r"top_k must be between 1 and 4 \(KLOSET_MAX_TOP_K; 0 asks for the default, 2\); this request asks for 5"
    with pytest.raises(InvalidInput, match=message):
        search.search_by_item("q/top", SearchFilter(), top_k=5)
    outfits = OutfitFinder(search, catalog, similar=20)  # its own similar garments are not bounded by max_top_k
    assert outfits.by_item("q/top", SearchFilter(), top_k=4).group is Group.TOP
    with pytest.raises(InvalidInput, match=message):
        outfits.by_item("q/top", SearchFilter(), top_k=5)


def test_the_default_top_k_must_be_within_max_top_k(store):
    with pytest.raises(ValueError, match="between 1 and max_top_k"):
        SearchEngine(NoClassifier(), store, 11, max_top_k=10)
