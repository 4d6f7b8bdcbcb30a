"""Fault test 4: a 300-photo bulk ingest mixing valid items with 18 kinds of broken input and duplicates."""

import io
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from kloset.core.garments.sample import write_sample_catalog
from kloset.v1 import ingest_pb2
from tests.faults.conftest import KLOSET, Serve, report


def _bomb() -> bytes:
    out = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(out, format="PNG")
    return out.getvalue()


def _image(transform: Callable[[bytes], bytes]):
    def apply(image: Path, label: Path) -> None:
        image.write_bytes(transform(image.read_bytes()))

    return apply


def _label(transform: Callable[[dict], object]):
    def apply(image: Path, label: Path) -> None:
        doc = json.loads(label.read_text())
        result = transform(doc)
        label.write_text(result if isinstance(result, str) else json.dumps(doc, ensure_ascii=False))

    return apply


def _details(doc: dict) -> dict:
    return doc["데이터셋 정보"]["데이터셋 상세설명"]


def _top_polygon(doc: dict) -> dict:
    return _details(doc)["폴리곤좌표"]["상의"][0]


def _labels(doc: dict, group: str) -> dict:
    return _details(doc)["라벨링"][group][0]


def _resize(doc: dict) -> None:
    doc["이미지 정보"].update({"이미지 너비": 640, "이미지 높이": 480})


def _drop_rect_width(doc: dict) -> None:
    _details(doc)["폴리곤좌표"]["상의"] = [{}]
    del _details(doc)["렉트좌표"]["상의"][0]["가로"]


def _vertex_gap(doc: dict) -> None:
    polygon = _top_polygon(doc)
    polygon["X좌표99"], polygon["Y좌표99"] = polygon.pop("X좌표3"), polygon.pop("Y좌표3")


def _shift(doc: dict) -> None:
    polygon = _top_polygon(doc)
    for key in polygon:
        polygon[key] += 1000


def _two_points(doc: dict) -> None:
    _details(doc)["폴리곤좌표"]["상의"][0] = {k: v for k, v in _top_polygon(doc).items() if k[-1] in "12"}


# kind -> (how to break a photo, what its rejection must say)
BROKEN = {
    "zero_bytes": (_image(lambda b: b""), "empty"),
    "truncated_jpeg": (_image(lambda b: b[: len(b) // 3]), "corrupt or truncated"),
    "corrupt_jpeg": (_image(lambda b: b[:20] + bytes(range(256)) * 4), "corrupt|not an image"),
    "not_an_image": (_image(lambda b: b"%PDF-1.4 a document"), "not an image"),
    "huge_dimensions": (_image(lambda b: _bomb()), "20000x20000 pixels, over the limit"),
    "label_not_json": (_label(lambda d: "{oops"), "not valid UTF-8 JSON"),
    "label_wrong_type": (_label(lambda d: "[1, 2, 3]"), "JSON object"),
    "label_missing_key": (_label(lambda d: d.pop("데이터셋 정보")), "no '데이터셋 정보'"),
    "coordinate_is_a_string": (_label(lambda d: _top_polygon(d).update({"X좌표1": "12"})), "must be a number"),
    "polygon_two_points": (_label(_two_points), "at least 3"),
    "polygon_nan": (_label(lambda d: _top_polygon(d).update({"Y좌표2": float("nan")})), "NaN"),
    "polygon_outside": (_label(_shift), "outside the 240x320 image"),
    "vertex_numbers_gap": (_label(_vertex_gap), "vertex numbers"),
    "rect_missing_width": (_label(_drop_rect_width), "missing 가로"),
    "group_not_a_list": (_label(lambda d: _details(d)["폴리곤좌표"].update({"상의": 5})), "list of objects"),
    "unknown_category": (_label(lambda d: _labels(d, "상의").update({"카테고리": "턱시도"})), "unknown category"),
    "unknown_color": (_label(lambda d: _labels(d, "하의").update({"색상": "마젠타"})), "unknown color '마젠타'"),
    "label_of_another_image": (_label(_resize), "label is for a 640x480 image"),
}


def test_a_mixed_batch_indexes_every_valid_item_and_names_every_problem(tmp_path, models, serves):
    catalog = tmp_path / "catalog"
    write_sample_catalog(catalog, n=300, seed=5)
    labelled = [f"{i:04d}" for i in range(1, 301) if i % 10 != 0]
    expected_reason = {}
    for n, (kind, (breaker, reason)) in enumerate(BROKEN.items()):
        for stem in labelled[2 * n : 2 * n + 2]:
            breaker(catalog / "images" / f"{stem}.jpg", catalog / "labels" / f"{stem}.json")
            expected_reason[f"{stem}.jpg"] = (kind, reason)
    copies = labelled[-2:]  # exact copies of two valid photos (and their labels) under other item ids
    for original, copy in zip(labelled[-4:-2], copies, strict=True):
        shutil.copy(catalog / "images" / f"{original}.jpg", catalog / "images" / f"{copy}.jpg")
        shutil.copy(catalog / "labels" / f"{original}.json", catalog / "labels" / f"{copy}.json")
    serve = Serve(tmp_path / "var", models)
    serves.append(serve.start())

    result = subprocess.run([KLOSET, "ingest", catalog, "--wait", "--json"], env=serve.env, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    counts = json.loads(result.stdout)
    assert result.returncode == 1  # some items failed
    reasons = {f["item"]: f["reason"] for f in counts["failures"]}
    assert set(reasons) == set(expected_reason)
    for item, (kind, pattern) in expected_reason.items():
        assert re.search(pattern, reasons[item]), f"{kind}: {reasons[item]}"
    valid = len(labelled) - len(expected_reason)  # the copies are items of their own (their own ids)
    assert counts["submitted"] + counts["duplicates"] + counts["skipped"] + counts["failed"] == 300
    assert (counts["submitted"], counts["done"], counts["duplicates"], counts["skipped"], counts["failed"]) == (
        valid, valid, 0, 30, len(expected_reason),
    )  # fmt: skip
    again = subprocess.run([KLOSET, "ingest", catalog, "--json"], env=serve.env, capture_output=True, text=True,
                           timeout=300)  # fmt: skip
    rerun = json.loads(again.stdout)  # an unchanged re-run: every indexed photo is a duplicate, nothing queued
    assert (rerun["submitted"], rerun["duplicates"], rerun["failed"]) == (0, valid, len(expected_reason))
    stats = json.loads(subprocess.run([KLOSET, "stats", "--json"], env=serve.env, capture_output=True, text=True,
                                      check=True).stdout)  # fmt: skip
    versions = stats.pop("model_versions")
    assert stats == {"indexed": 2 * valid, "queued": 0, "pending": 0, "dead_lettered": 0}
    assert sum(versions.values()) == 2 * valid and len(versions) == 1  # one model indexed every garment
    assert subprocess.run([KLOSET, "health"], env=serve.env, capture_output=True).returncode == 0  # no crash
    queue = serve.ingest().GetQueueStats(ingest_pb2.GetQueueStatsRequest(), timeout=10)
    report("broken-inputs", submitted=300, kinds=len(BROKEN), indexed=stats["indexed"], duplicates=rerun["duplicates"],
           skipped=counts["skipped"], rejected=counts["failed"], dead_lettered=queue.dead_lettered,
           lost=2 * valid - stats["indexed"])  # fmt: skip
