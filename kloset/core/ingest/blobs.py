"""Content-addressed storage of submitted bytes, so a queued job carries a digest instead of an image."""

import hashlib
import os
import tempfile
from pathlib import Path

from kloset.core.errors import NotFound


class BlobStore:
    """Files named by their SHA-256 under root/ab/cdef...; writing the same bytes twice is a no-op."""

    def __init__(self, root: Path) -> None:
        self._root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, digest: str) -> Path:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise NotFound(f"not a blob digest: {digest!r}")
        return self._root / digest[:2] / digest[2:]

    def put(self, data: bytes) -> str:
        """Store bytes durably (fsync before rename) and return their digest."""
        digest = hashlib.sha256(data).hexdigest()
        path = self._path(digest)
        if path.exists():
            return digest
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def get(self, digest: str) -> bytes:
        """The bytes stored under digest; NotFound if they are gone."""
        try:
            return self._path(digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is missing from {self._root}") from None
