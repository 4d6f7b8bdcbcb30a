"""The gRPC API end to end: every role running in one process on real ports, a real redis-server, Qdrant local."""

import io
import json
import logging

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from PIL import Image

from kloset.core.garments.images import encode_jpeg
from kloset.core.models.backbone import EMBEDDING_DIM
from kloset.v1 import (
    attribute_pb2,
    attribute_pb2_grpc,
    garment_pb2,
    ingest_pb2,
    ingest_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
)
from tests.waiting import wait_until


def channel(kloset, role: str) -> grpc.Channel:
    port = next(s.port for s in kloset.servers if s.name == role)
    return grpc.insecure_channel(f"127.0.0.1:{port}")


@pytest.fixture(scope="module")
def stubs(kloset):
    return {
        "attribute": attribute_pb2_grpc.AttributeServiceStub(channel(kloset, "attribute")),
        "search": search_pb2_grpc.SearchServiceStub(channel(kloset, "search")),
        "ingest": ingest_pb2_grpc.IngestServiceStub(channel(kloset, "ingest")),
    }


def submit(stubs, sample_catalog, stem: str, **extra) -> ingest_pb2.Job:
    request = ingest_pb2.SubmitRequest(
        image=(sample_catalog / "images" / f"{stem}.jpg").read_bytes(),
        label_json=(sample_catalog / "labels" / f"{stem}.json").read_bytes(),
        filename=f"{stem}.jpg",
        **extra,
    )
    return stubs["ingest"].Submit(request, timeout=30).job


def wait_for(stubs, job_ids, timeout_s=60.0) -> list[ingest_pb2.Job]:
    """The jobs once every one is DONE or FAILED."""
    finished = (ingest_pb2.JOB_STATE_DONE, ingest_pb2.JOB_STATE_FAILED)
    jobs: list[ingest_pb2.Job] = []

    def all_finished() -> bool:
        jobs[:] = [stubs["ingest"].GetJob(ingest_pb2.GetJobRequest(job_id=j), timeout=10).job for j in job_ids]
        return all(j.state in finished for j in jobs)

    wait_until(all_finished, timeout_s, what=f"{len(job_ids)} jobs to finish", interval_s=0.1,
               detail=lambda: {j.job_id: ingest_pb2.JobState.Name(j.state) for j in jobs})  # fmt: skip
    return jobs


@pytest.fixture(scope="module")
def ingested(stubs, sample_catalog):
    """The synthetic catalog's first 12 photos (one of them dress-only), indexed."""
    jobs = [submit(stubs, sample_catalog, f"{i:04d}") for i in range(1, 13)]
    queued = [j.job_id for j in jobs if j.state == ingest_pb2.JOB_STATE_QUEUED]
    assert len(queued) == 11 and sum(j.state == ingest_pb2.JOB_STATE_SKIPPED for j in jobs) == 1
    done = wait_for(stubs, queued)
    assert all(j.state == ingest_pb2.JOB_STATE_DONE for j in done), [j.error for j in done]
    return done


def polygon_regions(sample_catalog, stem):
    doc = json.loads((sample_catalog / "labels" / f"{stem}.json").read_text())
    regions = []
    for korean, group in (("상의", garment_pb2.GARMENT_GROUP_TOP), ("하의", garment_pb2.GARMENT_GROUP_BOTTOM)):
        entry = doc["데이터셋 정보"]["데이터셋 상세설명"]["폴리곤좌표"][korean][0]
        points = [garment_pb2.Point(x=entry[f"X좌표{i}"], y=entry[f"Y좌표{i}"]) for i in range(1, len(entry) // 2 + 1)]
        regions.append(garment_pb2.GarmentRegion(group=group, polygons=[garment_pb2.Polygon(points=points)]))
    return regions


def assert_invalid(call, message: str):
    with pytest.raises(grpc.RpcError) as info:
        call()
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert message in info.value.details()


def test_every_role_reports_serving_and_offers_reflection(kloset):
    for server in kloset.servers:
        stub = health_pb2_grpc.HealthStub(channel(kloset, server.name))
        assert stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel(kloset, "search"))
    [answer] = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    assert "kloset.v1.SearchService" in {s.name for s in answer.list_services_response.service}


def test_classify_returns_group_category_color_top3_and_embedding(stubs, sample_catalog):
    image = (sample_catalog / "images" / "0001.jpg").read_bytes()
    response = stubs["attribute"].Classify(
        attribute_pb2.ClassifyRequest(image=image, garments=polygon_regions(sample_catalog, "0001")), timeout=30
    )
    top, bottom = response.garments
    assert (top.group, bottom.group) == (garment_pb2.GARMENT_GROUP_TOP, garment_pb2.GARMENT_GROUP_BOTTOM)
    assert len(top.top_categories) == 3 and len(top.top_colors) == 3
    assert top.category == top.top_categories[0].label
    assert len(top.embedding) == EMBEDDING_DIM and abs(np.linalg.norm(top.embedding) - 1) < 1e-3
    assert response.model_version.startswith("attributes-32px-")


def bomb() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(out, format="PNG")
    return out.getvalue()


BAD_IMAGES = [
    (b"", "empty"),
    (b"this is not an image", "not an image"),
    (encode_jpeg(np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8))[:3000], "truncated"),
]


@pytest.mark.parametrize(("image", "message"), BAD_IMAGES)
def test_classify_rejects_bad_images(stubs, image, message):
    assert_invalid(lambda: stubs["attribute"].Classify(attribute_pb2.ClassifyRequest(image=image), timeout=30), message)


def test_classify_rejects_a_decompression_bomb(stubs):
    call = lambda: stubs["attribute"].Classify(attribute_pb2.ClassifyRequest(image=bomb()), timeout=30)  # noqa: E731
    assert_invalid(call, "over the limit")


@pytest.mark.parametrize(
    ("points", "message"),
    [
        ([(1, 1), (5, 5)], "at least 3"),
        ([(1, 1), (5, float("nan")), (9, 1)], "NaN"),
        ([(1, 1), (500, 1), (9, 9)], "outside the 240x320 image"),
    ],
)
def test_classify_rejects_bad_polygons(stubs, sample_catalog, points, message):
    region = garment_pb2.GarmentRegion(
        polygons=[garment_pb2.Polygon(points=[garment_pb2.Point(x=x, y=y) for x, y in points])]
    )
    request = attribute_pb2.ClassifyRequest(
        image=(sample_catalog / "images" / "0001.jpg").read_bytes(), garments=[region]
    )
    assert_invalid(lambda: stubs["attribute"].Classify(request, timeout=30), message)


@pytest.mark.parametrize(
    ("label", "message"),
    [
        (b'{"not": "k-fashion"}', "not K-Fashion"),
        (b"{broken json", "not valid UTF-8 JSON"),
        ('{"데이터셋 정보": {"데이터셋 상세설명": {"폴리곤좌표": {"상의": 5}}}}'.encode(), "list of objects"),
    ],
)
def test_submit_rejects_bad_labels_and_queues_nothing(stubs, sample_catalog, label, message):
    before = stubs["ingest"].GetQueueStats(ingest_pb2.GetQueueStatsRequest(), timeout=10)
    request = ingest_pb2.SubmitRequest(image=(sample_catalog / "images" / "0001.jpg").read_bytes(), label_json=label)
    assert_invalid(lambda: stubs["ingest"].Submit(request, timeout=30), message)
    after = stubs["ingest"].GetQueueStats(ingest_pb2.GetQueueStatsRequest(), timeout=10)
    assert (after.queued, after.pending) == (before.queued, before.pending)


@pytest.mark.parametrize(("image", "message"), [*BAD_IMAGES, (None, "over the limit")])
def test_submit_rejects_bad_images(stubs, image, message):
    request = ingest_pb2.SubmitRequest(image=bomb() if image is None else image, filename="x.jpg")
    assert_invalid(lambda: stubs["ingest"].Submit(request, timeout=30), message)


def test_ingested_catalog_is_searchable_by_item_under_every_policy(stubs, ingested):
    assert stubs["search"].GetIndexStats(search_pb2.GetIndexStatsRequest(), timeout=10).indexed == 22
    # An old client's request: no options, so the server's default policy (SOFT), and never the item itself.
    [soft] = stubs["search"].SearchByItem(search_pb2.SearchByItemRequest(item_id="0001/top"), timeout=30).garments
    assert soft.policy == search_pb2.FILTER_POLICY_SOFT and not soft.relaxed
    assert len(soft.results) == 10 and "0001/top" not in [h.item_id for h in soft.results]
    assert all(h.group == garment_pb2.GARMENT_GROUP_TOP for h in soft.results)
    strict = search_pb2.SearchByItemRequest(
        item_id="0001/top", options=search_pb2.SearchOptions(policy=search_pb2.FILTER_POLICY_STRICT), top_k=3
    )
    [garment] = stubs["search"].SearchByItem(strict, timeout=30).garments
    assert garment.policy == search_pb2.FILTER_POLICY_STRICT and len(garment.results) == 3
    allowed_colors = list(garment.filter.colors) or None
    for hit in garment.results:
        assert hit.category in garment.filter.categories or not garment.filter.categories
        assert allowed_colors is None or hit.color in allowed_colors
    if not garment.relaxed:
        assert list(garment.filter.categories) == [garment.category] and list(garment.filter.colors) == [garment.color]


def test_reingesting_the_same_items_does_not_duplicate_them(stubs, sample_catalog, ingested):
    jobs = [submit(stubs, sample_catalog, f"{i:04d}").job_id for i in (1, 2, 3)]
    assert all(j.state == ingest_pb2.JOB_STATE_DONE for j in wait_for(stubs, jobs))
    assert stubs["search"].GetIndexStats(search_pb2.GetIndexStatsRequest(), timeout=10).indexed == 22


def test_search_by_image_gives_one_result_list_per_garment(stubs, sample_catalog, ingested):
    request = search_pb2.SearchByImageRequest(
        image=(sample_catalog / "images" / "0001.jpg").read_bytes(),
        garments=polygon_regions(sample_catalog, "0001"),
        filter=search_pb2.SearchFilter(colors=["블랙", "white", "navy", "red"]),  # Korean names are accepted
        top_k=5,
    )
    answer, call = stubs["search"].SearchByImage.with_call(request, timeout=30)
    top, bottom = answer.garments
    assert (top.group, bottom.group) == (garment_pb2.GARMENT_GROUP_TOP, garment_pb2.GARMENT_GROUP_BOTTOM)
    timings = dict(call.trailing_metadata())  # where the time went: the model, then the store
    assert float(timings["kloset-inference-ms"]) > 0 and float(timings["kloset-search-ms"]) > 0
    for garment in (top, bottom):
        assert list(garment.filter.colors) == ["black", "white", "navy", "red"]
        assert len(garment.results) <= 5
        assert all(h.color in garment.filter.colors and h.group == garment.group for h in garment.results)
        assert len(garment.top_categories) == 3 and garment.top_categories[0].label == garment.category
    # Each list carries its own garment's box: the bounding box of the polygon it was asked with.
    for garment, region in zip((top, bottom), request.garments, strict=True):
        xs = [p.x for p in region.polygons[0].points]
        ys = [p.y for p in region.polygons[0].points]
        box = garment.box
        assert (box.x, box.y) == pytest.approx((min(xs), min(ys)), abs=1)
        assert (box.x + box.width - 1, box.y + box.height - 1) == pytest.approx((max(xs), max(ys)), abs=1)
    assert top.box != bottom.box


def test_search_rejects_unknown_filters_and_silly_top_k(stubs):
    bad_color = search_pb2.SearchByItemRequest(item_id="0001/top", filter=search_pb2.SearchFilter(colors=["plaid"]))
    assert_invalid(lambda: stubs["search"].SearchByItem(bad_color, timeout=10), "unknown color 'plaid'")
    too_many = search_pb2.SearchByItemRequest(item_id="0001/top", top_k=100_000)
    assert_invalid(lambda: stubs["search"].SearchByItem(too_many, timeout=10), "top_k must be between")


def test_unknown_items_and_jobs_are_not_found(stubs):
    for call in (
        lambda: stubs["search"].SearchByItem(search_pb2.SearchByItemRequest(item_id="nope/top"), timeout=10),
        lambda: stubs["ingest"].GetJob(ingest_pb2.GetJobRequest(job_id="0" * 32), timeout=10),
    ):
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_submit_batch_answers_each_item_and_a_bad_one_does_not_stop_the_stream(stubs, sample_catalog):
    good = ingest_pb2.SubmitRequest(
        image=(sample_catalog / "images" / "0021.jpg").read_bytes(),
        label_json=(sample_catalog / "labels" / "0021.json").read_bytes(),
        filename="0021.jpg",
    )
    bad = ingest_pb2.SubmitRequest(image=b"", filename="empty.jpg")
    dress_only = ingest_pb2.SubmitRequest(
        image=(sample_catalog / "images" / "0020.jpg").read_bytes(),
        label_json=(sample_catalog / "labels" / "0020.json").read_bytes(),
    )
    results = stubs["ingest"].SubmitBatch(iter([good, bad, dress_only, good]), timeout=60).results
    assert [r.index for r in results] == [0, 1, 2, 3]
    assert results[0].job.state == ingest_pb2.JOB_STATE_QUEUED and not results[0].duplicate
    assert (results[1].error_code, results[1].error) == ("INVALID_ARGUMENT", "image is empty (0 bytes)")
    assert results[2].job.state == ingest_pb2.JOB_STATE_SKIPPED
    assert results[3].duplicate and results[3].job.job_id == results[0].job.job_id


def test_watch_job_streams_changes_until_the_job_is_finished(stubs, sample_catalog):
    job = submit(stubs, sample_catalog, "0022")
    states = [r.job.state for r in stubs["ingest"].WatchJob(ingest_pb2.WatchJobRequest(job_id=job.job_id), timeout=60)]
    assert states[-1] == ingest_pb2.JOB_STATE_DONE
    assert len(states) == len(set(states))  # one message per change


def test_watch_job_of_an_unknown_job_is_not_found(stubs):
    with pytest.raises(grpc.RpcError) as info:
        list(stubs["ingest"].WatchJob(ingest_pb2.WatchJobRequest(job_id="nope"), timeout=10))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_garment_images_are_crops_of_the_stored_photos(stubs, ingested):
    request = search_pb2.GetGarmentImagesRequest(item_ids=["0001/top", "missing/top"], max_side=64)
    found, missing = stubs["search"].GetGarmentImages(request, timeout=30).images
    assert found.item_id == "0001/top" and found.jpeg[:2] == b"\xff\xd8" and missing.jpeg == b""
    width, height = Image.open(io.BytesIO(found.jpeg)).size
    assert max(width, height) <= 64
    too_many = search_pb2.GetGarmentImagesRequest(item_ids=[f"{i}/top" for i in range(33)])
    assert_invalid(lambda: stubs["search"].GetGarmentImages(too_many, timeout=10),
                   "at most 32 garment images (KLOSET_MAX_GARMENT_IMAGES); this one asks for 33")  # fmt: skip


def test_complete_look_over_grpc(stubs, sample_catalog, ingested):
    request = search_pb2.CompleteLookRequest(item_id="0002/top", top_k=4)
    [look] = stubs["search"].CompleteLook(request, timeout=30).garments
    assert look.group == garment_pb2.GARMENT_GROUP_TOP and 0 < len(look.results) <= 4
    assert all(h.group == garment_pb2.GARMENT_GROUP_BOTTOM and h.support >= 1 for h in look.results)
    # Which bottoms win is tested on a hand-built catalog (tests/core/index); the 32 px model finds every
    # synthetic bottom a near-duplicate of every other, so here only the shape of the answer is checked.
    image = (sample_catalog / "images" / "0002.jpg").read_bytes()
    [top_region, _] = polygon_regions(sample_catalog, "0002")
    by_photo = search_pb2.CompleteLookRequest(image=image, garment=top_region, top_k=3)
    [look] = stubs["search"].CompleteLook(by_photo, timeout=30).garments
    assert look.group == garment_pb2.GARMENT_GROUP_TOP and look.results
    assert all(h.group == garment_pb2.GARMENT_GROUP_BOTTOM for h in look.results)
    both = search_pb2.CompleteLookRequest(item_id="0002/top", image=image)
    assert_invalid(lambda: stubs["search"].CompleteLook(both, timeout=10), "either item_id or image")


def test_search_options_page_group_and_refuse_bad_values(stubs, ingested):
    def items(**options):
        request = search_pb2.SearchByItemRequest(item_id="0004/top", top_k=4,
                                                 options=search_pb2.SearchOptions(**options))  # fmt: skip
        return [h.item_id for h in stubs["search"].SearchByItem(request, timeout=30).garments[0].results]

    first, second = items(), items(offset=4)
    assert len(first) == len(second) == 4 and not set(first) & set(second)
    grouped = items(group_by_photo=True)
    assert len({i.split("/")[0] for i in grouped}) == len(grouped)
    assert items(min_score=1e9) == []
    assert_invalid(lambda: items(offset=1_000_000), "offset must be between")
    assert_invalid(lambda: items(policy=42), "unknown filter policy")


def test_a_submissions_request_id_follows_it_into_the_worker_job(stubs, sample_catalog, caplog):
    from kloset.core.request_context import RequestIdFilter

    caplog.handler.addFilter(RequestIdFilter())
    caplog.set_level(logging.INFO, logger="kloset.workers")
    request = ingest_pb2.SubmitRequest(
        image=(sample_catalog / "images" / "0013.jpg").read_bytes(),
        label_json=(sample_catalog / "labels" / "0013.json").read_bytes(),
        filename="0013.jpg",
    )
    job, call = stubs["ingest"].Submit.with_call(request, timeout=30, metadata=[("x-request-id", "catalog-run-9")])
    assert ("x-request-id", "catalog-run-9") in call.initial_metadata()
    [done] = wait_for(stubs, [job.job.job_id])
    assert done.state == ingest_pb2.JOB_STATE_DONE, done.error
    worker_lines = [r for r in caplog.records if job.job.job_id in r.getMessage()]
    assert worker_lines and all(r.request_id == "catalog-run-9" for r in worker_lines)


def test_get_jobs_answers_many_jobs_in_one_call_and_never_more_than_asked(stubs, ingested):
    ids = [job.job_id for job in ingested]
    unknown = ["0" * 32, "f" * 32]
    asked = [ids[5], unknown[0], *ids, ids[5], unknown[1]]  # a repeated id, unknown ones among them
    answer = stubs["ingest"].GetJobs(ingest_pb2.GetJobsRequest(job_ids=asked), timeout=10)
    assert [job.job_id for job in answer.jobs] == [ids[5], *(i for i in ids if i != ids[5])]
    assert list(answer.not_found) == unknown  # per id, not a failed call
    assert all(job.state == ingest_pb2.JOB_STATE_DONE and job.item_ids for job in answer.jobs)
    [one] = stubs["ingest"].GetJobs(ingest_pb2.GetJobsRequest(job_ids=ids[:1]), timeout=10).jobs
    assert one == stubs["ingest"].GetJob(ingest_pb2.GetJobRequest(job_id=ids[0]), timeout=10).job


def test_get_jobs_refuses_more_ids_than_the_cap_and_empty_requests(stubs, kloset):
    cap = kloset.settings.max_job_ids
    too_many = ingest_pb2.GetJobsRequest(job_ids=[f"{i:032x}" for i in range(cap + 1)])
    assert_invalid(lambda: stubs["ingest"].GetJobs(too_many, timeout=10), f"at most {cap} job ids (KLOSET_MAX_JOB_IDS)")
    assert_invalid(lambda: stubs["ingest"].GetJobs(ingest_pb2.GetJobsRequest(), timeout=10), "at least one job id")
    blank = ingest_pb2.GetJobsRequest(job_ids=["0" * 32, ""])
    assert_invalid(lambda: stubs["ingest"].GetJobs(blank, timeout=10), "job_ids[1] is empty")
    at_cap = ingest_pb2.GetJobsRequest(job_ids=[f"{i:032x}" for i in range(cap)])
    assert len(stubs["ingest"].GetJobs(at_cap, timeout=10).not_found) == cap
