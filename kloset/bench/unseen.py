"""Which photos a relevance benchmark may query: photos neither in the catalog nor trained on, and proof of it.

A query photo is refused when it matches a catalog or training photo by id, by bytes, or by picture (a small gray
copy correlating at SAME_PICTURE_CORRELATION or more catches a re-encoded or resized copy). By default the queries
are the models' validation photos of the folder and the catalog every other photo; with a folder of queries, that
folder is searched against all of the data and any seen photo refuses the run.
"""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from kloset.bench.retrieval import Truth
from kloset.bench.views import MAX_PIXELS
from kloset.core.errors import InvalidInput
from kloset.core.garments.folders import scan_catalog
from kloset.core.garments.images import decode_image
from kloset.core.garments.kfashion import LabeledGarment, parse_label
from kloset.core.models.training import is_validation

# Two photos whose small gray copies correlate at least this much are the same picture (re-encoded, resized) or
# another shot of the same outfit in the same place: a resized JPEG at quality 60 keeps about 0.999; CCP holds
# such pairs at 0.95-0.99 (0594/0722, tag-only 1083/0343, 1913/0643), and its distinct photos stay below 0.94.
SAME_PICTURE_CORRELATION = 0.95


class BenchRefused(InvalidInput):
    """The queries and the catalog or the training data overlap: the figures could read their own answers."""


@dataclass(frozen=True)
class Photo:
    """A labelled photo: its id (label stem), bytes and annotated tops and bottoms."""

    photo_id: str
    path: Path
    label: Path
    image: bytes
    garments: list[tuple[Truth, LabeledGarment]]


class QuerySource(Protocol):
    """Where the queries and the catalog come from (a RelevanceBench)."""

    data: Path
    queries: Path | None  # None: the models' validation photos of `data`
    validation_percent: int  # the models' split (model.json)
    trained_on_extras: bool  # the attribute model also trained on data/queries/ (tag-only photos)
    limit: int | None  # only the first N query photos


def labelled_photos(folder: Path) -> list[Photo]:
    """Every photo of a K-Fashion folder with an annotated top or bottom (category and color), in file order."""
    photos = []
    for found in scan_catalog(folder).photos:
        if found.label is None:
            continue
        label = parse_label(found.label.read_bytes())
        stem = found.image.stem
        garments = [
            (Truth(f"{stem}/{g.group.value}", g.group, g.category, g.color), g)
            for g in label.garments
            if g.category and g.color
        ]
        if garments:
            photos.append(Photo(found.label.stem, found.image, found.label, found.image.read_bytes(), garments))
    return photos


def split(bench: QuerySource) -> tuple[list[Photo], list[Photo], dict[str, str]]:
    """(catalog, queries, left out): by default the validation photos of `data` against the others, less those
    seen in the catalog or in training (left out, with why); with `queries`, that folder against all of `data`,
    refused (BenchRefused) if any query was seen."""
    photos = labelled_photos(bench.data)
    if bench.queries is None:
        queries = [p for p in photos if is_validation(p.photo_id, bench.validation_percent)]
        catalog = [p for p in photos if not is_validation(p.photo_id, bench.validation_percent)]
    else:
        queries, catalog = labelled_photos(bench.queries), photos
    queries = queries[: bench.limit] if bench.limit is not None else queries
    if not catalog:
        raise BenchRefused(f"{bench.data} leaves no catalog photo beside the queries")
    seen = seen_photos(queries, catalog, _training_photos(bench))
    if bench.queries is not None and seen:
        shown = "; ".join(seen.values())
        raise BenchRefused(f"the queries are not unseen photos ({len(seen)} found): {shown[:600]}")
    # The split's own validation photos: the data set holds a few pictures twice (another shot of one outfit, a
    # tag-only copy); those are left out of the queries, and the figures say which.
    queries = [p for p in queries if p.photo_id not in seen]
    if not queries:
        raise BenchRefused(f"no unseen query photo with an annotated top or bottom in {bench.queries or bench.data}")
    return catalog, queries, seen


def _training_photos(bench: QuerySource) -> list[Path]:
    """Every photo the models trained on: the training split of `data`, and its tag-only photos if used."""
    trained = [
        p.image
        for p in scan_catalog(bench.data).photos
        if p.label is not None and not is_validation(p.label.stem, bench.validation_percent)
    ]
    extras = bench.data / "queries" / "images"
    if bench.trained_on_extras and extras.is_dir():
        trained.extend(sorted(extras.iterdir()))
    return trained


def seen_photos(queries: Sequence[Photo], catalog: Sequence[Photo], trained: Sequence[Path]) -> dict[str, str]:
    """The queries that are catalog or training photos, by id, by bytes or by picture, each with why."""
    catalog_ids = {p.photo_id for p in catalog} | {p.path.stem for p in catalog}
    trained_ids = {path.stem for path in trained}
    seen: dict[str, str] = {}
    for photo in queries:
        if photo.photo_id in catalog_ids:
            seen[photo.photo_id] = f"{photo.photo_id} is in the catalog"
        elif photo.photo_id in trained_ids:
            seen[photo.photo_id] = f"{photo.photo_id} was trained on"
    known: dict[str, str] = {}
    for p in catalog:
        known.setdefault(_sha256(p.image), f"catalog photo {p.path.name}")
    for path in trained:
        known.setdefault(_sha256(path.read_bytes()), f"training photo {path.name}")
    for photo in queries:
        if photo.photo_id not in seen and (match := known.get(_sha256(photo.image))) is not None:
            seen[photo.photo_id] = f"{photo.path.name} has the same bytes as {match}"
    for photo, match in _same_pictures([q for q in queries if q.photo_id not in seen], catalog, trained):
        seen[photo.photo_id] = f"{photo.path.name} is the same picture as {match}"
    return seen


def _same_pictures(
    queries: Sequence[Photo], catalog: Sequence[Photo], trained: Sequence[Path]
) -> list[tuple[Photo, str]]:
    catalog_paths = {p.path.resolve() for p in catalog}
    named = [(f"catalog photo {p.path.name}", thumbnail(p.image)) for p in catalog]
    named += [(f"training photo {t.name}", thumbnail(t.read_bytes())) for t in trained
              if t.resolve() not in catalog_paths]  # fmt: skip
    if not named:
        return []
    names, known = [n for n, _ in named], np.stack([t for _, t in named])
    problems = []
    for photo in queries:
        correlation = known @ thumbnail(photo.image)
        if correlation.max() >= SAME_PICTURE_CORRELATION:
            problems.append((photo, names[int(correlation.argmax())]))
    return problems


def thumbnail(image: bytes, size: int = 32) -> np.ndarray:
    """A small gray copy, zero mean and unit length, so that the dot product of two is their correlation: it
    survives re-encoding and resizing, and tells distinct photos apart."""
    pixels = decode_image(image, MAX_PIXELS, apply_exif_orientation=False)
    gray = Image.fromarray(pixels).convert("L").resize((size, size), Image.Resampling.BOX)
    values = np.asarray(gray, dtype=np.float64).ravel()
    values -= values.mean()
    return values / max(float(np.linalg.norm(values)), 1e-9)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
