import json
from pathlib import Path

from kloset.core.garments.folders import scan_catalog


def write_label(path: Path, file_name: str | None, identifier: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {k: v for k, v in (("이미지 파일명", file_name), ("이미지 식별자", identifier)) if v is not None}
    path.write_text(json.dumps({"이미지 정보": info, "데이터셋 정보": {}}, ensure_ascii=False))


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"jpeg")
    return path


def test_images_and_labels_folders(tmp_path):
    a, b = touch(tmp_path / "images" / "0001.jpg"), touch(tmp_path / "images" / "0002.jpg")
    write_label(tmp_path / "labels" / "0001.json", "0001.jpg")
    touch(tmp_path / "queries" / "images" / "9999.jpg")  # not part of the catalog layout
    scan = scan_catalog(tmp_path)
    assert [(p.image, p.label) for p in scan.photos] == [(a, tmp_path / "labels" / "0001.json")]
    assert scan.unmatched_images == [b] and scan.unmatched_labels == []


def test_ai_hub_trees_are_matched_by_file_name_then_identifier_then_stem(tmp_path):
    by_name = touch(tmp_path / "원천데이터" / "스트리트" / "street_1.JPG")
    by_id = touch(tmp_path / "원천데이터" / "스트리트" / "1234.jpg")
    by_stem = touch(tmp_path / "원천데이터" / "레트로" / "retro_9.jpg")
    orphan_image = touch(tmp_path / "원천데이터" / "레트로" / "retro_10.jpg")
    write_label(tmp_path / "라벨링데이터" / "스트리트" / "a.json", "street_1.jpg")
    write_label(tmp_path / "라벨링데이터" / "스트리트" / "b.json", None, identifier=1234)
    write_label(tmp_path / "라벨링데이터" / "레트로" / "retro_9.json", None)
    (tmp_path / "라벨링데이터" / "레트로" / "broken.json").write_text("{not json")
    scan = scan_catalog(tmp_path)
    pairs = {p.image: p.label.name for p in scan.photos}
    assert pairs == {by_name: "a.json", by_id: "b.json", by_stem: "retro_9.json"}
    assert scan.unmatched_images == [orphan_image]
    assert [p.name for p in scan.unmatched_labels] == ["broken.json"]


def test_labels_nested_too_deeply_still_pair_by_their_stem(tmp_path):
    image = touch(tmp_path / "photos" / "0007.jpg")
    (tmp_path / "photos" / "0007.json").write_text("[" * 100_000)
    scan = scan_catalog(tmp_path)
    assert [(p.image, p.label.name) for p in scan.photos] == [(image, "0007.json")]
