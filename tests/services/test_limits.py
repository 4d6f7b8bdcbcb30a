"""What a caller cannot make kloset do: name unbounded garments, crash a parser, or send back huge errors.

Real gRPC on free ports against roles started with a small garment limit and batch size.
"""

import grpc
import pytest

from kloset.core.config import Role
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


@pytest.fixture(scope="module")
def settings(tmp_path_factory, tiny_model_dir, tiny_segmenter_dir):
    return role_settings(
        tmp_path_factory.mktemp("limits"),
        tiny_model_dir,
        tiny_segmenter_dir,
        workers=0,
        max_garments_per_request=LIMIT,
        inference_batch_size=BATCH,
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
