import json

import numpy as np
import pytest

from kloset.core.blobs import BlobStore
from kloset.core.catalog import CatalogIngest, Submission
from kloset.core.errors import InvalidInput
from kloset.core.images import encode_jpeg
from kloset.core.kfashion import label_document
from kloset.core.queue import JobState

TOP = np.array([[10.0, 10.0], [50.0, 10.0], [50.0, 40.0], [10.0, 40.0]])
BOTTOM = np.array([[10.0, 50.0], [50.0, 50.0], [50.0, 90.0], [10.0, 90.0]])


def photo(width=60, height=100) -> bytes:
    return encode_jpeg(np.full((height, width, 3), 120, dtype=np.uint8))


def label(width=60, height=100, **garments) -> bytes:
    garments = garments or {"상의": ([TOP], "셔츠", "블루"), "하의": ([BOTTOM], "팬츠", "블랙")}
    return json.dumps(label_document("look7.jpg", width, height, garments)).encode()


@pytest.fixture
def catalog(queue, tmp_path):
    return CatalogIngest(queue, BlobStore(tmp_path / "blobs"), max_pixels=1_000_000, max_label_bytes=100_000)


def test_a_labelled_photo_is_queued_with_one_item_per_garment(catalog, queue):
    job = catalog.submit(Submission(image=photo(), label_json=label()))
    assert job.state is JobState.QUEUED
    assert job.item_ids == ("look7/top", "look7/bottom")  # default item id: the label's file stem
    assert queue.stats().queued == 1


def test_item_id_comes_from_the_request_then_the_file_name(catalog):
    assert catalog.submit(Submission(image=photo(), label_json=label(), item_id="sku-1")).item_ids[0] == "sku-1/top"
    assert catalog.submit(Submission(image=photo(), label_json=label(), filename="a/b/0042.jpg")).item_ids == (
        "0042/top",
        "0042/bottom",
    )


def test_outer_or_one_piece_only_is_skipped_not_queued(catalog, queue):
    job = catalog.submit(Submission(image=photo(), label_json=label(원피스=([TOP], "드레스", "레드"))))
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
        (Submission(image=photo(), label_json=b"x" * 200_000), "over the limit"),
    ],
)
def test_bad_submissions_are_rejected_and_nothing_is_queued(catalog, queue, submission, message):
    with pytest.raises(InvalidInput, match=message):
        catalog.submit(submission)
    assert queue.stats().queued == 0
