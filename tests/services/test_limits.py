"""What a caller cannot make kloset do: name unbounded garments, polygons, points, results or pixels, send an
unbounded message, crash a parser, slip an unknown word into a label, or send back huge errors.

Real gRPC on free ports against roles started with small limits (each message names its KLOSET_ variable).
"""

import json
import math

import grpc
import numpy as np
import pytest
from kloset.services.ingest.servicer import MAX_DEAD_LETTER_LIMIT

from kloset.core.config import Role
from kloset.core.garments.images import encode_jpeg
from kloset.core.garments.kfashion import label_document
from kloset.v1 import (
    attribute_pb2,
    attribute_pb2_grpc,
    garment_pb2,
    ingest_pb2,
    ingest_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
)
from tests.conftest import role_settings

LIMIT = 4
BATCH = 2
POLYGONS = 3
POINTS = 8
TOP_K = 5
PIXELS = 100_000  # the sample photos are 240 x 320 = 76,800
MESSAGE_BYTES = 4 * 1024 * 1024


@pytest.fixture(scope="module")
def settings(tmp_path_factory, tiny_model_dir, tiny_segmenter_dir):
    return role_settings(
        tmp_path_factory.mktemp("limits"),
        tiny_model_dir,
        tiny_segmenter_dir,
        workers=0,
        max_garments_per_request=LIMIT,
        inference_batch_size=BATCH,
        max_polygons_per_garment=POLYGONS,
        max_points_per_polygon=POINTS,
        max_top_k=TOP_K,
        top_k=3,
        max_image_pixels=PIXELS,
        max_message_bytes=MESSAGE_BYTES,
    )


@pytest.fixture(scope="module")
def program(settings):
    from kloset.program import Program

    program = Program(settings, frozenset({Role.ATTRIBUTE, Role.SEARCH, Role.INGEST}))
    program.start()
    yield program
    program.stop()


@pytest.fixture(scope="module")
def stubs(program):
    def channel(role: str) -> grpc.Channel:
        return grpc.insecure_channel(f"127.0.0.1:{next(s.port for s in program.servers if s.name == role)}")

    return {
        "attribute": attribute_pb2_grpc.AttributeServiceStub(channel("attribute")),
        "search": search_pb2_grpc.SearchServiceStub(channel("search")),
        "ingest": ingest_pb2_grpc.IngestServiceStub(channel("ingest")),
    }


def boxes(n: int) -> list[garment_pb2.GarmentRegion]:
    """n boxes inside the sample photos (240 x 320)."""
    return [
        garment_pb2.GarmentRegion(box=garment_pb2.BoundingBox(x=5 + 3 * i, y=10 + 4 * i, width=80, height=120))
        for i in range(n)
    ]


def refused(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def assert_garment_limit(error: grpc.RpcError, named: int) -> None:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert f"at most {LIMIT} garments" in error.details()
    assert "KLOSET_MAX_GARMENTS_PER_REQUEST" in error.details()
    assert f"this one names {named}" in error.details()


def test_settings_reach_the_attribute_engine_and_its_model(settings):
    from kloset.program import Program

    engine = Program(settings, frozenset({Role.ATTRIBUTE}))._classifier()
    assert engine.max_garments == LIMIT
    assert engine._model.batch_size == BATCH


def test_classify_takes_up_to_the_garment_limit_and_refuses_more(stubs, sample_catalog):
    image = (sample_catalog / "images" / "0001.jpg").read_bytes()
    classify = stubs["attribute"].Classify
    answer = classify(attribute_pb2.ClassifyRequest(image=image, garments=boxes(LIMIT)), timeout=60)
    assert len(answer.garments) == LIMIT
    error = refused(lambda: classify(attribute_pb2.ClassifyRequest(image=image, garments=boxes(LIMIT + 1)), timeout=60))
    assert_garment_limit(error, LIMIT + 1)


def test_the_issue_s_5000_boxes_are_refused_at_once(stubs, sample_catalog):
    image = (sample_catalog / "images" / "0001.jpg").read_bytes()
    request = search_pb2.SearchByImageRequest(image=image, garments=boxes(5_000))
    assert request.ByteSize() < 200_000
    assert_garment_limit(refused(lambda: stubs["search"].SearchByImage(request, timeout=30)), 5_000)


def test_a_million_empty_regions_are_counted_before_any_is_converted(stubs, sample_catalog):
    # An empty GarmentRegion is 2 bytes on the wire: a 2 MB message names a million garments.
    request = attribute_pb2.ClassifyRequest(image=b"not even an image")
    request.garments.extend([garment_pb2.GarmentRegion()] * 1_000_000)
    assert_garment_limit(refused(lambda: stubs["attribute"].Classify(request, timeout=60)), 1_000_000)


def test_search_by_image_takes_up_to_the_garment_limit_and_refuses_more(stubs, sample_catalog):
    image = (sample_catalog / "images" / "0001.jpg").read_bytes()
    search = stubs["search"].SearchByImage
    answer = search(search_pb2.SearchByImageRequest(image=image, garments=boxes(LIMIT)), timeout=60)
    assert len(answer.garments) == LIMIT
    error = refused(lambda: search(search_pb2.SearchByImageRequest(image=image, garments=boxes(LIMIT + 1)), timeout=60))
    assert_garment_limit(error, LIMIT + 1)


@pytest.mark.parametrize(
    ("label", "message"),
    [
        (b"[" * 100_000, "nested too deeply"),
        ('{"데이터셋 정보": '.encode() * 100_000, "nested too deeply"),
        (b'{"x": ' + b"9" * 5_000 + b"}", "too many digits"),
    ],
)
def test_submit_answers_hostile_label_json_with_invalid_argument(stubs, sample_catalog, label, message):
    image = (sample_catalog / "images" / "0001.jpg").read_bytes()
    request = ingest_pb2.SubmitRequest(image=image, label_json=label, filename="0001.jpg")
    error = refused(lambda: stubs["ingest"].Submit(request, timeout=30))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert message in error.details()
    [result] = stubs["ingest"].SubmitBatch(iter([request]), timeout=30).results
    assert result.error_code == "INVALID_ARGUMENT" and message in result.error


def test_a_huge_item_id_on_submit_is_refused_with_a_short_reason(stubs, sample_catalog):
    image = (sample_catalog / "images" / "0001.jpg").read_bytes()
    request = ingest_pb2.SubmitRequest(image=image, item_id="x" * 20_000)
    error = refused(lambda: stubs["ingest"].Submit(request, timeout=30))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details()[:200])
    assert "item id 'xxx" in error.details() and "(20000 characters)" in error.details()
    assert len(error.details()) < 300


def test_a_huge_job_id_is_not_found_with_a_short_reason(stubs):
    for call in (
        lambda: stubs["ingest"].GetJob(ingest_pb2.GetJobRequest(job_id="j" * 20_000), timeout=10),
        lambda: list(stubs["ingest"].WatchJob(ingest_pb2.WatchJobRequest(job_id="j" * 20_000), timeout=10)),
        lambda: stubs["ingest"].RetryDeadLetters(
            ingest_pb2.RetryDeadLettersRequest(job_ids=["j" * 20_000]), timeout=10
        ),
    ):
        error = refused(call)
        assert error.code() == grpc.StatusCode.NOT_FOUND, (error.code(), error.details()[:200])
        assert len(error.details()) < 300


def test_a_huge_item_id_on_search_by_item_gets_a_short_reason(stubs):
    """Not RESOURCE_EXHAUSTED 'Stream removed': the reason has to fit the trailers."""
    request = search_pb2.SearchByItemRequest(item_id="x" * 20_000)
    error = refused(lambda: stubs["search"].SearchByItem(request, timeout=30))
    assert error.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND), (
        error.code(),
        error.details()[:200],
    )
    assert len(error.details()) < 300, error.details()[:200]


def polygon(points: int, x: float = 20, y: float = 30) -> garment_pb2.Polygon:
    """A convex polygon of `points` vertices inside the sample photos."""
    angles = [2 * math.pi * i / points for i in range(points)]
    return garment_pb2.Polygon(points=[garment_pb2.Point(x=x + 15 * math.cos(a), y=y + 15 * math.sin(a))
                                       for a in angles])  # fmt: skip


def photo_of(width: int, height: int) -> bytes:
    return encode_jpeg(np.full((height, width, 3), 128, dtype=np.uint8))


def region_calls(stubs, image: bytes, region: garment_pb2.GarmentRegion) -> list:
    """Each call that takes garment regions (Classify, SearchByImage, CompleteLook), with this one region."""
    attribute, search = stubs["attribute"], stubs["search"]
    return [
        lambda: attribute.Classify(attribute_pb2.ClassifyRequest(image=image, garments=[region]), timeout=60),
        lambda: search.SearchByImage(search_pb2.SearchByImageRequest(image=image, garments=[region]), timeout=60),
        lambda: search.CompleteLook(search_pb2.CompleteLookRequest(image=image, garment=region), timeout=60),
    ]


def assert_invalid(error: grpc.RpcError, *parts: str) -> None:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details()[:300])
    for part in parts:
        assert part in error.details(), error.details()


def test_requests_take_up_to_the_polygon_limit_per_garment_and_refuse_more(stubs, sample_catalog):
    image = (sample_catalog / "images" / "0001.jpg").read_bytes()
    enough = garment_pb2.GarmentRegion(polygons=[polygon(4, x=20 + 40 * i) for i in range(POLYGONS)])
    for call in region_calls(stubs, image, enough):
        assert call().garments
    too_many = garment_pb2.GarmentRegion(polygons=[polygon(4, x=20 + 40 * i) for i in range(POLYGONS + 1)])
    for call in region_calls(stubs, image, too_many):
        assert_invalid(refused(call), f"garment 1 has {POLYGONS + 1} polygons",
                       f"at most {POLYGONS} (KLOSET_MAX_POLYGONS_PER_GARMENT)")  # fmt: skip


def test_requests_take_up_to_the_point_limit_per_polygon_and_refuse_more(stubs, sample_catalog):
    image = (sample_catalog / "images" / "0001.jpg").read_bytes()
    for call in region_calls(stubs, image, garment_pb2.GarmentRegion(polygons=[polygon(POINTS)])):
        assert call().garments
    region = garment_pb2.GarmentRegion(polygons=[polygon(4), polygon(POINTS + 1)])
    for call in region_calls(stubs, image, region):
        assert_invalid(refused(call), f"garment 1 polygon 2 has {POINTS + 1} points",
                       f"at most {POINTS} (KLOSET_MAX_POINTS_PER_POLYGON)")  # fmt: skip


def test_a_million_points_are_counted_before_any_is_converted_or_the_image_decoded(stubs):
    # An empty Point is 2 bytes on the wire: a 2 MB message holds a million of them.
    garments = [garment_pb2.GarmentRegion(polygons=[polygon(3)]), garment_pb2.GarmentRegion()]
    garments[1].polygons.add().points.extend([garment_pb2.Point()] * 1_000_000)
    request = attribute_pb2.ClassifyRequest(image=b"not even an image", garments=garments)
    assert_invalid(refused(lambda: stubs["attribute"].Classify(request, timeout=60)),
                   "garment 2 polygon 1 has 1000000 points", "KLOSET_MAX_POINTS_PER_POLYGON")  # fmt: skip


TRIANGLE = np.array([[20.0, 20.0], [60.0, 20.0], [40.0, 60.0]])


def ring(points: int) -> np.ndarray:
    angles = 2 * np.pi * np.arange(points) / points
    return np.stack([120 + 50 * np.cos(angles), 160 + 50 * np.sin(angles)], axis=1)


def label_json(garments: dict) -> bytes:
    """A label for the sample photos (240 x 320): Korean group -> (polygons, category, color)."""
    return json.dumps(label_document("0001.jpg", 240, 320, garments)).encode()


def with_labeling(group: str, **names) -> bytes:
    """A good label whose 라벨링 also names a group that has no polygon."""
    doc = label_document("0001.jpg", 240, 320, {"상의": ([TRIANGLE], "블라우스", "화이트")})
    doc["데이터셋 정보"]["데이터셋 상세설명"]["라벨링"][group] = [names]
    return json.dumps(doc).encode()


TOP = ([TRIANGLE], "블라우스", "화이트")


@pytest.mark.parametrize(
    ("label", "message"),
    [
        (label_json({"상의": ([TRIANGLE] * (POLYGONS + 1), "블라우스", "화이트")}),
         f"상의 has {POLYGONS + 1} polygons; a garment may have at most {POLYGONS} (KLOSET_MAX_POLYGONS_PER_GARMENT)"),
        (label_json({"상의": TOP, "아우터": ([TRIANGLE] * (POLYGONS + 1), "코트", "블랙")}),
         f"아우터 has {POLYGONS + 1} polygons"),
        (label_json({"하의": ([ring(POINTS + 1)], "스커트", "블랙")}),
         f"하의 polygon 1 has {POINTS + 1} points; a polygon may have at most {POINTS} (KLOSET_MAX_POINTS_PER_POLYGON"),
        (with_labeling("하의", 카테고리="턱시도"), "라벨링.하의.카테고리: unknown category '턱시도'"),
        (with_labeling("아우터", 카테고리="코트", 색상="마젠타"), "라벨링.아우터.색상: unknown color '마젠타'"),
        (with_labeling("원피스", 카테고리="망토"), "라벨링.원피스.카테고리: unknown category '망토'"),
    ],
)  # fmt: skip
def test_submit_refuses_labels_over_a_limit_or_with_an_unknown_word_anywhere(stubs, sample_catalog, label, message):
    image = (sample_catalog / "images" / "0001.jpg").read_bytes()
    request = ingest_pb2.SubmitRequest(image=image, label_json=label, filename="0001.jpg")
    assert_invalid(refused(lambda: stubs["ingest"].Submit(request, timeout=30)), message)
    good = ingest_pb2.SubmitRequest(image=image, label_json=with_labeling("아우터", 카테고리="짚업", 색상="카키"))
    bad, fine = stubs["ingest"].SubmitBatch(iter([request, good]), timeout=30).results
    assert (bad.index, bad.error_code) == (0, "INVALID_ARGUMENT") and message in bad.error
    assert (fine.index, fine.error_code, list(fine.job.item_ids)) == (1, "", ["0001/top"])


def test_submit_takes_a_label_at_the_limits(stubs, sample_catalog):
    image = (sample_catalog / "images" / "0001.jpg").read_bytes()
    label = label_json({"상의": ([TRIANGLE] * POLYGONS, "탑", "블랙"), "하의": ([ring(POINTS)], "스커트", "블랙")})
    answer = stubs["ingest"].Submit(ingest_pb2.SubmitRequest(image=image, label_json=label), timeout=30)
    assert list(answer.job.item_ids) == ["0001/top", "0001/bottom"]


def test_top_k_up_to_the_limit_and_0_are_taken_more_is_refused_before_the_model_runs(stubs, sample_catalog):
    search = stubs["search"]
    image = (sample_catalog / "images" / "0001.jpg").read_bytes()
    for top_k in (0, TOP_K):
        assert search.SearchByImage(search_pb2.SearchByImageRequest(image=image, top_k=top_k), timeout=60).garments
        assert search.CompleteLook(search_pb2.CompleteLookRequest(image=image, top_k=top_k), timeout=60).garments
    in_bounds = search_pb2.SearchByItemRequest(item_id="0001/top", top_k=TOP_K)  # the catalog is empty (no workers)
    assert refused(lambda: search.SearchByItem(in_bounds, timeout=10)).code() == grpc.StatusCode.NOT_FOUND
    for top_k in (TOP_K + 1, 2**32 - 1):  # top_k is a uint32: never negative
        for request in (
            search_pb2.SearchByImageRequest(image=b"not an image", top_k=top_k),
            search_pb2.SearchByItemRequest(item_id="0001/top", top_k=top_k),
            search_pb2.CompleteLookRequest(image=b"not an image", top_k=top_k),
            search_pb2.CompleteLookRequest(item_id="0001/top", top_k=top_k),
        ):
            call = getattr(search, type(request).__name__.removesuffix("Request"))
            assert_invalid(refused(lambda: call(request, timeout=10)),  # noqa: B023 (called at once)
                           f"top_k must be between 1 and {TOP_K} (KLOSET_MAX_TOP_K; 0 asks for the default, 3); "
                           f"this request asks for {top_k}")  # fmt: skip


def test_images_over_the_pixel_limit_are_refused_by_every_call_that_takes_one(stubs):
    image = photo_of(400, 300)  # 120,000 pixels
    calls = [
        *region_calls(stubs, image, boxes(1)[0]),
        lambda: stubs["search"].SearchByImage(search_pb2.SearchByImageRequest(image=image), timeout=30),
        lambda: stubs["ingest"].Submit(ingest_pb2.SubmitRequest(image=image, filename="big.jpg"), timeout=30),
    ]
    for call in calls:
        assert_invalid(refused(call), f"400x300 pixels, over the limit of {PIXELS} pixels (KLOSET_MAX_IMAGE_PIXELS)")
    assert stubs["attribute"].Classify(attribute_pb2.ClassifyRequest(image=photo_of(400, 250)), timeout=60).garments


def test_a_message_over_the_size_limit_is_resource_exhausted_from_grpc_itself(stubs):
    image = b"\xff\xd8" + bytes(MESSAGE_BYTES)
    for call in (
        lambda: stubs["attribute"].Classify(attribute_pb2.ClassifyRequest(image=image), timeout=30),
        lambda: stubs["search"].SearchByImage(search_pb2.SearchByImageRequest(image=image), timeout=30),
        lambda: stubs["ingest"].Submit(ingest_pb2.SubmitRequest(image=image), timeout=30),
    ):
        error = refused(call)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (error.code(), error.details())
        assert "Received message larger than max" in error.details() and f"vs. {MESSAGE_BYTES})" in error.details()


def test_dead_letters_are_listed_a_bounded_page_at_a_time(stubs):
    ingest, limit = stubs["ingest"], MAX_DEAD_LETTER_LIMIT
    assert ingest.ListDeadLetters(ingest_pb2.ListDeadLettersRequest(limit=limit), timeout=10).total == 0
    too_many = ingest_pb2.ListDeadLettersRequest(limit=limit + 1)
    assert_invalid(refused(lambda: ingest.ListDeadLetters(too_many, timeout=10)),
                   f"at most {limit} dead letters", f"asks for {limit + 1}")  # fmt: skip
