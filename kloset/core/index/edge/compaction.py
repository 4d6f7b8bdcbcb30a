"""Building a Qdrant Edge shard's HNSW index out of process, and the folder of shard generations it needs.

`EdgeShard.optimize()` holds the GIL until it returns (75 s for 100k garments on 2 cores), so it runs here in a
child process (`python -m kloset.core.index.edge.compaction DIR`) on a copy of the live shard. Writes made while
it runs are recorded and replayed onto the copy before it goes live. A crash at any point leaves CURRENT naming
a complete shard; a half-built copy is removed at the next start.
"""

import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kloset.core.errors import Unavailable

log = logging.getLogger(__name__)

_CURRENT = "CURRENT"
_LAYOUT = "LAYOUT"  # how the live generation's vectors are stored, once an optimize has built them so
_LOCK = ".lock"
_PREFIX = "shard-"
_POLL_S = 0.2


class StoreDamaged(Unavailable):
    """The shard folder is not as kloset left it; starting would risk the catalog."""


def fsync_folder(folder: Path) -> None:
    """Make a rename or a new file in folder durable (its directory entry), not only the file's bytes."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ShardFolder:
    """A folder of shard generations (shard-000001, ...) and CURRENT, the name of the live one; locked by the
    process that opened it, as two processes writing one shard would corrupt it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._lock = open(root / _LOCK, "a")  # noqa: SIM115 - held open for the store's lifetime
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise Unavailable(
                f"the Qdrant Edge store in {root} is open in another process: stop it, or give this one its own "
                "KLOSET_DATA_DIR (or KLOSET_EDGE_PATH)"
            ) from None

    def release(self) -> None:
        self._lock.close()

    def generations(self) -> list[Path]:
        """Every shard generation folder, oldest first."""
        return sorted(p for p in self.root.glob(f"{_PREFIX}*") if p.is_dir() and p.name[len(_PREFIX) :].isdigit())

    def live(self) -> Path | None:
        """The generation CURRENT names; None only for a folder that holds no generation yet (a new store).

        A CURRENT that is missing or names a folder that is not there, beside generations, is damage (a lost
        write, a hand edit): kloset never guesses which generation is the catalog, and never creates an empty one
        over it; it refuses to start and says what to do (StoreDamaged)."""
        current = self.root / _CURRENT
        generations = self.generations()
        name = current.read_text(encoding="utf-8").strip() if current.exists() else None
        if name is not None and name.startswith(_PREFIX) and (self.root / name).is_dir():
            return self.root / name
        if name is None and not generations:
            return None
        found = ", ".join(p.name for p in generations) or "none"
        what = "is missing" if name is None else f"names {name!r}, which is not a shard folder here"
        newest = generations[-1].name if generations else "shard-000001"
        raise StoreDamaged(
            f"{current} {what}, and the folder holds the generations {found}: kloset changes nothing until you "
            f"say which one is the catalog. Write its name into {current} (the newest is {newest}: "
            f"`echo {newest} > {current}`) and start again; nothing was deleted"
        )

    def new_generation(self) -> Path:
        numbers = [int(p.name[len(_PREFIX) :]) for p in self.generations()]
        return self.root / f"{_PREFIX}{max(numbers, default=0) + 1:06d}"

    def make_live(self, path: Path) -> None:
        """Point CURRENT at path atomically and durably: write, fsync the file, rename, fsync the folder (so a
        power loss cannot bring back a CURRENT that names a generation retired after the switch)."""
        tmp = self.root / f"{_CURRENT}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(path.name)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.root / _CURRENT)
        fsync_folder(self.root)

    def remove_stale(self, keep: Path | None = None) -> None:
        """Delete every generation but the live one (and keep, a rebuild's): old shards already swapped out, copies
        a crash left. Only ever called once CURRENT names a generation that is there."""
        live = self.live()
        if live is None:
            return
        for path in self.generations():
            if path not in (live, keep):
                shutil.rmtree(path, ignore_errors=True)

    def layout(self) -> dict | None:
        """The vector layout (quantization, on disk) the live generation was last optimized into; None for a store
        made before kloset wrote it (unquantized float32 in RAM) or one whose first optimize has not finished."""
        try:
            found = json.loads((self.root / _LAYOUT).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return found if isinstance(found, dict) else None

    def write_layout(self, layout: dict) -> None:
        """Record the layout once a generation built with it is live (atomically: a crash leaves the old one, and
        the store only optimizes once more)."""
        tmp = self.root / f"{_LAYOUT}.tmp"
        tmp.write_text(json.dumps(layout, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.root / _LAYOUT)

    def vector_sizes(self, shard: Path) -> dict[str, int]:
        """The named vectors a shard was created with, from its edge_config.json ({} when unreadable)."""
        try:
            config = json.loads((shard / "edge_config.json").read_text(encoding="utf-8"))
            return {name: int(v["size"]) for name, v in config.get("vectors", {}).items()}
        except (OSError, ValueError, KeyError, TypeError):
            return {}


class Compaction:
    """One optimize of a copy of the live shard: copy, child process, replay of the writes made meanwhile."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self._operations: list = []
        self._process: subprocess.Popen | None = None

    @classmethod
    def start(cls, folder: ShardFolder, live: Path | None) -> "Compaction":
        """Copy the (flushed) live shard to a new generation; the caller holds the write lock meanwhile."""
        if live is None:
            raise Unavailable(f"no live shard in {folder.root}")
        compaction = cls(folder.new_generation())
        shutil.copytree(live, compaction.target)
        return compaction

    def record(self, operation) -> None:
        self._operations.append(operation)

    def run(self, should_stop: Callable[[], bool]) -> bool:
        """Optimize the copy in a child process; False when stopped or when the child failed."""
        with tempfile.TemporaryFile() as errors:  # a file, not a pipe: a chatty child cannot block on it
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(self.target)], stdout=subprocess.DEVNULL, stderr=errors
            )
            started = time.monotonic()
            while self._process.poll() is None:
                if should_stop():
                    self.abandon()
                    return False
                time.sleep(_POLL_S)
            if self._process.returncode != 0:
                errors.seek(0)
                lines = errors.read().decode(errors="replace").strip().splitlines()
                log.error("optimizing %s failed: %s", self.target, lines[-1] if lines else self._process.returncode)
                return False
        log.info("optimized %s in %.1f s", self.target.name, time.monotonic() - started)
        return True

    def replay(self, shard) -> None:
        """Apply, in order, the writes the live shard took since the copy."""
        for operation in self._operations:
            shard.update(operation)
        self._operations.clear()

    def abandon(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._operations.clear()
        shutil.rmtree(self.target, ignore_errors=True)


def optimize_shard(path: str) -> bool:
    """Open a shard folder, build its indexes, flush and close it (the child process's whole work)."""
    import qdrant_edge as qe

    shard = qe.EdgeShard.load(path)
    try:
        changed = shard.optimize()
        shard.flush()
        return changed
    finally:
        shard.close()


if __name__ == "__main__":
    os.nice(10)  # the serving process's searches come first; building the index can wait for a free core
    optimize_shard(sys.argv[1])
