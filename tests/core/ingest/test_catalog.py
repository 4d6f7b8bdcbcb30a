import json

import numpy as np
import pytest

from kloset.core.errors import InvalidInput
from kloset.core.garments.images import encode_jpeg
from kloset.core.garments.kfashion import label_document
from kloset.core.ingest.blobs import BlobStore
from kloset.core.ingest.catalog import CatalogIngest, Submission
from kloset.core.ingest.jobs import JobState
from kloset.core.limits import InputLimits

LIMITS = InputLimits(max_pixels=1_000_000, max_label_bytes=100_000, max_polygons=2, max_points=8)

TOP = np.array([[10.0, 10.0], [50.0, 10.0], [50.0, 40.0], [10.0, 40.0]])
BOTTOM = np.array([[10.0, 50.0], [50.0, 50.0], [50.0, 90.0], [10.0, 90.0]])


def photo(width=60, height=100) -> bytes:
    return encode_jpeg(np.full((height, width, 3), 120, dtype=np.uint8))


def label(width=60, height=100, **garments) -> bytes:
    garments = garments or {"상의": ([TOP], "셔츠", "블루"), "하의": ([BOTTOM], "팬츠", "블랙")}
    return json.dumps(label_document("look7.jpg", width, height, garments)).encode()


@pytest.fixture
def catalog(queue, tmp_path):
    return CatalogIngest(queue, BlobStore(tmp_path / "blobs"), LIMITS)


def test_a_labelled_photo_is_queued_with_one_item_per_garment(catalog, queue):
    job, duplicate = catalog.submit(Submission(image=photo(), label_json=label()))
    assert not duplicate
    assert job.state is JobState.QUEUED
    assert job.item_ids == ("look7/top", "look7/bottom")  # default item id: the label's file stem
    assert queue.stats().queued == 1


def test_item_id_comes_from_the_request_then_the_file_name(catalog):
    job, _ = catalog.submit(Submission(image=photo(), label_json=label(), item_id="sku-1"))
    assert job.item_ids[0] == "sku-1/top"
    job, _ = catalog.submit(Submission(image=photo(height=101), label_json=label(height=101), filename="a/b/0042.jpg"))
    assert job.item_ids == (
        "0042/top",
        "0042/bottom",
    )


def test_outer_or_one_piece_only_is_skipped_not_queued(catalog, queue):
    job, _ = catalog.submit(Submission(image=photo(), label_json=label(원피스=([TOP], "드레스", "레드"))))
    assert job.state is JobState.SKIPPED and "원피스" in job.error
    assert queue.stats().queued == 0


@pytest.mark.parametrize(
    ("submission", "message"),
    [
        (Submission(image=b""), "empty"),
        (Submission(image=b"GIF89a-broken"), "corrupt|not an image"),
        (Submission(image=photo(), label_json=b'{"annotations": 1}'), "not K-Fashion"),
        (Submission(image=photo(), label_json=label(width=640, height=480)), "label is for a 640x480 image"),
        (
            Submission(image=photo(), label_json=label(상의=([TOP + 100], "셔츠", "블루"))),
            "reaches outside the 60x100 image",
        ),
        (Submission(image=photo(), label_json=label(상의=([TOP], "셔츠", "보라보라"))), "unknown color"),
        (Submission(image=photo(), item_id="bad id with spaces"), "item id"),
        (Submission(image=photo(), label_json=b"x" * 200_000), "over the limit of 100000 bytes"),
        (Submission(image=photo(width=1001, height=1000)), r"1001x1000 pixels, .*\(KLOSET_MAX_IMAGE_PIXELS\)"),
        (Submission(image=photo(), label_json=label(상의=([TOP] * 3, "셔츠", "블루"))), "상의 has 3 polygons"),
        (
            Submission(image=photo(), label_json=label(하의=([np.concatenate([BOTTOM] * 3)], "팬츠", "블랙"))),
            r"하의 polygon 1 has 12 points; .* at most 8 \(KLOSET_MAX_POINTS_PER_POLYGON\)",
        ),
        # Outer or one-piece only would be skipped, not queued: an unknown word in it is still refused.
        (Submission(image=photo(), label_json=label(아우터=([TOP], "망토", "블랙"))), "아우터.카테고리: unknown"),
        (
            Submission(image=photo(), label_json=label(상의=([TOP], "셔츠", "블루"), 원피스=([TOP], "드레스", "보라"))),
            "라벨링.원피스.색상: unknown color '보라'",
        ),
    ],
)
def test_bad_submissions_are_rejected_and_nothing_is_queued(catalog, queue, submission, message):
    with pytest.raises(InvalidInput, match=message):
        catalog.submit(submission)
    assert queue.stats().queued == 0


def test_exact_duplicates_are_reported_not_queued_again(catalog, queue):
    first, duplicate = catalog.submit(Submission(image=photo(), label_json=label()))
    assert not duplicate
    again, duplicate = catalog.submit(Submission(image=photo(), label_json=label()))
    assert duplicate and again.job_id == first.job_id
    assert queue.stats().queued == 1
    elsewhere, duplicate = catalog.submit(Submission(image=photo(), label_json=label(), item_id="other"))
    assert not duplicate and elsewhere.job_id != first.job_id  # another item id is another catalog entry
    relabelled, duplicate = catalog.submit(
        Submission(image=photo(), label_json=label(상의=([TOP], "니트웨어", "블루")))
    )
    assert not duplicate and relabelled.job_id != first.job_id  # a corrected label is new content


def test_a_garment_missing_from_the_catalog_is_queued_again_and_force_always_queues(queue, tmp_path):
    """Issue 17 (5): content dedup answered "duplicate" for a week for a photo whose garments had been deleted
    (or lost with their store), so re-running `kloset ingest` could not bring them back."""
    from kloset.core.garments.labels import Group
    from kloset.core.index.edge.store import EdgeGarmentStore
    from kloset.core.index.store import CatalogGarment

    store = EdgeGarmentStore.open(path=str(tmp_path / "edge"), dim=4, color_dim=2)
    try:
        catalog = CatalogIngest(queue, BlobStore(tmp_path / "blobs"), LIMITS, store)
        first, _ = catalog.submit(Submission(image=photo(), label_json=label(), item_id="look7"))
        [delivery] = queue.read("w1", block_ms=100)
        vectors = (np.ones(4, np.float32) / 2, np.ones(2, np.float32) / 2**0.5)
        store.upsert([CatalogGarment(i, Group(i.split("/")[1]), "shirt", "blue", "look7.jpg", "m", *vectors)
                      for i in first.item_ids])  # fmt: skip
        queue.complete(delivery, list(first.item_ids))  # what a worker does once the garments are stored
        again, duplicate = catalog.submit(Submission(image=photo(), label_json=label(), item_id="look7"))
        assert duplicate and again.job_id == first.job_id  # an unchanged re-run still skips
        forced, duplicate = catalog.submit(Submission(image=photo(), label_json=label(), item_id="look7", force=True))
        assert not duplicate and forced.job_id != first.job_id
        [delivery] = queue.read("w1", block_ms=100)
        queue.complete(delivery, list(forced.item_ids))
        store.delete(["look7/top"])  # a garment deleted since
        back, duplicate = catalog.submit(Submission(image=photo(), label_json=label(), item_id="look7"))
        assert not duplicate and back.job_id not in (first.job_id, forced.job_id)
        assert queue.stats().queued == 1
    finally:
        store.close()


def test_a_failed_job_does_not_block_resubmitting_its_content(catalog, queue):
    first, _ = catalog.submit(Submission(image=photo(), label_json=label()))
    [delivery] = queue.read("w1", block_ms=100)
    queue.fail(delivery, "simulated")
    again, duplicate = catalog.submit(Submission(image=photo(), label_json=label()))
    assert not duplicate and again.job_id != first.job_id


def test_backpressure_refuses_new_work_beyond_the_backlog_and_loses_nothing(redis_url, tmp_path):
    from kloset.core.errors import Overloaded
    from kloset.core.ingest.queue import IngestQueue, connect

    small = IngestQueue(connect(redis_url), stream=f"test:bp:{tmp_path.name}", max_backlog=2)
    small.ensure_group()
    catalog = CatalogIngest(small, BlobStore(tmp_path / "b"), LIMITS)
    for height in (100, 101):
        catalog.submit(Submission(image=photo(height=height), label_json=label(height=height)))
    with pytest.raises(Overloaded, match="holds 2 unprocessed jobs"):
        catalog.submit(Submission(image=photo(height=102), label_json=label(height=102)))
    [delivery] = small.read("w1", block_ms=100)
    small.complete(delivery, [])
    catalog.submit(Submission(image=photo(height=102), label_json=label(height=102)))  # room again
    assert small.stats().queued == 2


@pytest.mark.parametrize(
    ("submission", "message"),
    [
        (Submission(image=photo(), label_json=b"[" * 100_000), "nested too deeply"),
        (Submission(image=photo(), item_id="x" * 20_000), r"item id 'xxx.*… \(20000 characters\) is not valid"),
        (Submission(image=photo(), filename="y" * 20_000 + ".jpg"), r"item id 'yyy.*… \(20000 characters\)"),
        (Submission(image=photo(), item_id="sku", filename="z" * 2_000), r"file name 'zzz.*longer than 1000"),
    ],
)
def test_hostile_submissions_are_invalid_input_with_short_messages(catalog, queue, submission, message):
    with pytest.raises(InvalidInput, match=message) as info:
        catalog.submit(submission)
    assert len(str(info.value)) < 300
    assert queue.stats().queued == 0


def test_a_label_for_another_image_quotes_its_file_name_briefly(catalog):
    document = json.loads(label(width=640, height=480))
    document["이미지 정보"]["이미지 파일명"] = "n" * 50_000 + ".jpg"
    with pytest.raises(InvalidInput, match=r"label is for a 640x480 image \('nnn.*… \(50004 characters\)\)") as info:
        catalog.submit(Submission(image=photo(), label_json=json.dumps(document).encode()))
    assert len(str(info.value)) < 300
