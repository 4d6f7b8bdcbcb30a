"""Finding catalog photos and their K-Fashion labels in a folder.

Two layouts: `images/` + `labels/` (as in the CCP set), or AI Hub's original K-Fashion download, where photos
and JSON files sit in parallel trees and are matched by the label's 이미지 파일명 (or 이미지 식별자, or the
file stem). Files that match nothing are reported, as the original project's first clean-up step did.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})


@dataclass(frozen=True)
class CatalogPhoto:
    image: Path
    label: Path | None


@dataclass
class CatalogScan:
    photos: list[CatalogPhoto] = field(default_factory=list)
    unmatched_images: list[Path] = field(default_factory=list)
    unmatched_labels: list[Path] = field(default_factory=list)


def scan_catalog(root: Path) -> CatalogScan:
    """Pair every photo under root with its label; photos and labels without a partner are listed apart."""
    if (root / "images").is_dir() and (root / "labels").is_dir():
        images, labels = _files(root / "images", IMAGE_SUFFIXES), _files(root / "labels", {".json"})
    else:
        images, labels = _files(root, IMAGE_SUFFIXES), _files(root, {".json"})
    keys: dict[str, Path] = {}
    for label in labels:
        for key in _label_keys(label):
            keys.setdefault(key, label)
    scan = CatalogScan()
    used: set[Path] = set()
    for image in images:
        label = keys.get(image.name.lower()) or keys.get(image.stem.lower())
        if label is None or label in used:
            scan.unmatched_images.append(image)
            continue
        used.add(label)
        scan.photos.append(CatalogPhoto(image, label))
    scan.unmatched_labels = [label for label in labels if label not in used]
    return scan


def _files(root: Path, suffixes) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)


def _label_keys(label: Path) -> list[str]:
    """Names an image may have to belong to this label: its 이미지 파일명, its 이미지 식별자, the file stem."""
    keys = []
    try:
        info = json.loads(label.read_bytes()).get("이미지 정보", {})
        if isinstance(info.get("이미지 파일명"), str):
            keys.append(Path(info["이미지 파일명"]).name.lower())
        if isinstance(info.get("이미지 식별자"), int | str):
            keys.append(str(info["이미지 식별자"]).lower())
    except (OSError, ValueError, AttributeError, RecursionError):  # RecursionError: arrays nested thousands deep
        pass  # a broken label still pairs by its stem, and Submit then says what is wrong with it
    keys.append(label.stem.lower())
    return keys
