"""Converting between kloset.v1 messages and core values; the only module that knows both."""

import math
from collections.abc import Iterable, Sequence

import numpy as np

from kloset.core.classifier import check_garment_count
from kloset.core.errors import InvalidInput
from kloset.core.garments.labels import Group
from kloset.core.garments.regions import Box, Region, make_box, make_polygon
from kloset.core.index.ranking import FilterPolicy, Hit
from kloset.core.index.search import GarmentResults, SearchFilter, SearchOptions
from kloset.core.ingest.jobs import DeadLetter, Job, JobState
from kloset.core.limits import InputLimits
from kloset.core.models.predictions import GarmentPrediction, top_labels
from kloset.v1 import attribute_pb2, garment_pb2, ingest_pb2, search_pb2

_GROUPS = {Group.TOP: garment_pb2.GARMENT_GROUP_TOP, Group.BOTTOM: garment_pb2.GARMENT_GROUP_BOTTOM}
_POLICIES = {
    FilterPolicy.STRICT: search_pb2.FILTER_POLICY_STRICT,
    FilterPolicy.SOFT: search_pb2.FILTER_POLICY_SOFT,
    FilterPolicy.NONE: search_pb2.FILTER_POLICY_NONE,
}


_JOB_STATES = {
    JobState.QUEUED: ingest_pb2.JOB_STATE_QUEUED,
    JobState.PROCESSING: ingest_pb2.JOB_STATE_PROCESSING,
    JobState.DONE: ingest_pb2.JOB_STATE_DONE,
    JobState.FAILED: ingest_pb2.JOB_STATE_FAILED,
    JobState.SKIPPED: ingest_pb2.JOB_STATE_SKIPPED,
}


def group_to_proto(group: Group) -> int:
    return _GROUPS[group]


def group_from_proto(value: int) -> Group | None:
    return next((g for g, v in _GROUPS.items() if v == value), None)


def regions_from_proto(regions: Sequence[garment_pb2.GarmentRegion], limits: InputLimits) -> list[Region]:
    """Validate request regions: garments, polygons and points within `limits` (all counted before any is
    converted, since an empty region is 2 bytes on the wire), polygons with 3+ finite points, boxes of a finite
    positive size."""
    check_garment_count(len(regions), limits.max_garments)
    for i, region in enumerate(regions, start=1):
        limits.check_polygons(len(region.polygons), f"garment {i}")
        for j, polygon in enumerate(region.polygons, start=1):
            limits.check_points(len(polygon.points), f"garment {i} polygon {j}")
    result = []
    for i, region in enumerate(regions, start=1):
        polygons = tuple(
            make_polygon([(p.x, p.y) for p in polygon.points], f"garment {i} polygon {j}")
            for j, polygon in enumerate(region.polygons, start=1)
        )
        box = None
        if region.HasField("box"):
            b = region.box
            box = make_box(b.x, b.y, b.width, b.height, f"garment {i} box")
        result.append(Region(group=group_from_proto(region.group), polygons=polygons, box=box))
    return result


def regions_to_proto(regions: Sequence[Region]) -> list[garment_pb2.GarmentRegion]:
    messages = []
    for region in regions:
        message = garment_pb2.GarmentRegion(
            group=group_to_proto(region.group) if region.group else garment_pb2.GARMENT_GROUP_UNSPECIFIED,
            polygons=[
                garment_pb2.Polygon(points=[garment_pb2.Point(x=float(x), y=float(y)) for x, y in polygon])
                for polygon in region.polygons
            ],
        )
        if region.box is not None:
            b = region.box
            message.box.CopyFrom(garment_pb2.BoundingBox(x=b.x, y=b.y, width=b.width, height=b.height))
        messages.append(message)
    return messages


def box_to_proto(box: Box | None) -> garment_pb2.BoundingBox | None:
    return None if box is None else garment_pb2.BoundingBox(x=box.x, y=box.y, width=box.width, height=box.height)


def box_from_proto(message, field: str) -> Box | None:
    if not message.HasField(field):
        return None
    b = getattr(message, field)
    return Box(b.x, b.y, b.width, b.height)


def _scores(probabilities: Iterable[tuple[str, float]]) -> list[garment_pb2.LabelScore]:
    return [garment_pb2.LabelScore(label=label, probability=prob) for label, prob in probabilities]


def prediction_to_proto(p: GarmentPrediction) -> attribute_pb2.GarmentAttributes:
    return attribute_pb2.GarmentAttributes(
        group=group_to_proto(p.group),
        category=p.category,
        color=p.color,
        top_categories=_scores(p.top_categories),
        top_colors=_scores(p.top_colors),
        embedding=p.embedding.tolist(),
        categories=_scores(top_labels(p.category_probabilities, len(p.category_probabilities))),
        colors=_scores(top_labels(p.color_probabilities, len(p.color_probabilities))),
        color_vector=p.color_vector.tolist(),
        box=box_to_proto(p.box),
    )


def prediction_from_proto(m: attribute_pb2.GarmentAttributes) -> GarmentPrediction:
    # An attribute service older than the full distributions sends only the top three of each.
    categories = m.categories or m.top_categories
    colors = m.colors or m.top_colors
    return GarmentPrediction(
        group=group_from_proto(m.group) or Group.TOP,
        category_probabilities={s.label: s.probability for s in categories},
        color_probabilities={s.label: s.probability for s in colors},
        embedding=np.asarray(m.embedding, dtype=np.float32),
        color_vector=np.asarray(m.color_vector, dtype=np.float32),
        box=box_from_proto(m, "box"),
    )


def filter_from_proto(f: search_pb2.SearchFilter) -> SearchFilter:
    return SearchFilter.parse(list(f.categories), list(f.colors))


def options_from_proto(o: search_pb2.SearchOptions) -> SearchOptions:
    """Search options; an old client's empty message means the default policy and no paging."""
    policy = next((p for p, v in _POLICIES.items() if v == o.policy), None)
    if policy is None and o.policy != search_pb2.FILTER_POLICY_UNSPECIFIED:
        raise InvalidInput(f"unknown filter policy {o.policy}")
    min_score = o.min_score if o.HasField("min_score") else None
    if min_score is not None and not math.isfinite(min_score):
        raise InvalidInput("min_score must be a finite number")
    return SearchOptions(policy=policy, offset=o.offset, min_score=min_score, group_by_photo=o.group_by_photo)


def results_to_proto(r: GarmentResults) -> search_pb2.GarmentResults:
    return search_pb2.GarmentResults(
        group=group_to_proto(r.group),
        category=r.category,
        color=r.color,
        filter=search_pb2.SearchFilter(categories=r.filter.categories, colors=r.filter.colors),
        results=[_hit_to_proto(h) for h in r.results],
        box=box_to_proto(r.box),
        top_categories=_scores(r.top_categories),
        top_colors=_scores(r.top_colors),
        policy=_POLICIES[r.policy],
        relaxed=r.relaxed,
        relaxation=r.relaxation,
    )


def _hit_to_proto(hit: Hit) -> search_pb2.SearchHit:
    g = hit.garment
    return search_pb2.SearchHit(
        item_id=g.item_id, score=hit.score, group=group_to_proto(g.group), category=g.category, color=g.color,
        source=g.source, visual_similarity=hit.visual_similarity, color_similarity=hit.color_similarity,
        photo_id=g.photo, support=hit.support,
    )  # fmt: skip


def job_to_proto(job: Job) -> ingest_pb2.Job:
    return ingest_pb2.Job(
        job_id=job.job_id,
        state=_JOB_STATES[job.state],
        item_ids=list(job.item_ids),
        error=job.error,
        attempts=job.attempts,
        created_at=job.created_at,
        updated_at=job.updated_at,
    )


def dead_letter_to_proto(letter: DeadLetter) -> ingest_pb2.DeadLetter:
    return ingest_pb2.DeadLetter(
        job_id=letter.job_id,
        item_id=letter.spec.item_id,
        filename=letter.spec.filename,
        error=letter.error,
        failed_at=letter.failed_at,
    )


def policy_to_proto(policy: FilterPolicy) -> int:
    """The kloset.v1 enum value of a filter policy."""
    return _POLICIES[policy]
