"""Moving a catalog from a Qdrant local-mode folder (kloset before Qdrant Edge) into the Edge store.

Nothing a user indexed is silently left behind: while the old folder holds the collection and no migration marker,
the Edge backend refuses to start and names the command that copies it (`kloset migrate-store`). The old folder is
never changed, only marked once every garment is copied.
"""

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kloset.core.config import Settings
from kloset.core.errors import ModelError

log = logging.getLogger(__name__)
_BATCH = 256


def _holds_catalog(settings: Settings) -> bool:
    """The local-mode folder holds the catalog: a collection of its name, or (kloset since aliases) an alias."""
    root = settings.qdrant_local_path
    if (root / "collection" / settings.collection).is_dir():
        return True
    try:  # qdrant-client local mode keeps its aliases in meta.json
        aliases = json.loads((root / "meta.json").read_text(encoding="utf-8")).get("aliases", {})
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(aliases, dict) and settings.collection in aliases


def _marker(settings: Settings) -> Path:
    return settings.qdrant_local_path / f"{settings.collection}.migrated.json"


def needs_migration(settings: Settings) -> bool:
    """A local-mode folder holds this collection and it has not been copied into the Edge store yet."""
    return _holds_catalog(settings) and not _marker(settings).exists()


def refuse_unmigrated(settings: Settings) -> None:
    if needs_migration(settings):
        raise ModelError(
            f"{settings.qdrant_local_path} holds the catalog {settings.collection!r} in Qdrant local mode, which "
            f"kloset no longer opens by default: run `kloset migrate-store` to copy it into the Qdrant Edge store "
            f"({settings.edge_root}), or set KLOSET_STORE=local to keep using it as it is"
        )


@dataclass(frozen=True)
class MigrationReport:
    source: str
    target: str
    copied: int
    store_count: int


def migrate_store(settings: Settings, progress: Callable[[int, int], None] = lambda done, total: None):
    """Copy every garment (vectors and payload, same ids) from local mode into Edge, build its index, mark the old
    folder migrated; safe to run again after an interruption (upserts by stable id)."""
    from kloset.core.index.edge.store import EdgeGarmentStore
    from kloset.core.index.qdrant_store import QdrantGarmentStore

    if not _holds_catalog(settings):
        where = settings.qdrant_local_path
        raise ModelError(f"nothing to migrate: {where} holds no collection {settings.collection!r}")
    source = QdrantGarmentStore.open(url=None, api_key=None, path=str(settings.qdrant_local_path),
                                     collection=settings.collection, dim=None, color_dim=None)  # fmt: skip
    try:
        total = source.count()
        sizes = source.vector_sizes()
        target = EdgeGarmentStore.open(path=str(settings.edge_root), dim=sizes["visual"], color_dim=sizes["color"],
                                       tuning=settings.edge_tuning)  # fmt: skip
        try:
            copied = 0
            for batch in source.scan(_BATCH):
                target.upsert(batch)
                copied += len(batch)
                progress(copied, total)
            if copied != total or target.count() < total:
                raise ModelError(f"copied {copied} of {total} garments; the old folder is left unmarked, run again")
            target.optimize()
            report = MigrationReport(str(settings.qdrant_local_path), str(settings.edge_root), copied, target.count())
        finally:
            target.close()
    finally:
        source.close()
    _marker(settings).write_text(json.dumps(report.__dict__), encoding="utf-8")
    log.info("migrated %d garments into %s", copied, settings.edge_root)
    return report
