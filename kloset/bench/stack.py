"""`kloset serve` as a child process on free ports over a temporary data folder: the real stack a benchmark
measures (gRPC, embedded redis-server, Qdrant Edge), torn down afterwards."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kloset.core.config import Role
from kloset.core.errors import Unavailable

_KLOSET = str(Path(sys.executable).parent / "kloset")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_NOT_CARRIED = (
    "KLOSET_REDIS_URL", "KLOSET_REDIS_PASSWORD", "KLOSET_QDRANT_URL", "KLOSET_QDRANT_API_KEY", "KLOSET_API_KEYS",
    "KLOSET_API_KEYS_FILE", "KLOSET_API_KEY", "KLOSET_TLS_CERT", "KLOSET_TLS_KEY", "KLOSET_TLS_CA", "KLOSET_TLS",
    "KLOSET_METRICS_PORT",
)


class TemporaryStack:
    """Every role of `kloset serve` in one child process, with all state under data_dir."""

    def __init__(self, data_dir: Path, **env: str) -> None:
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        # The caller's KLOSET_ settings (model folders, tuning) carry over; ports and state are the stack's own.
        self.env = dict(os.environ)
        for role in Role:
            port = free_port()
            self.env[f"KLOSET_{role.name}_PORT"] = str(port)
            self.env[f"KLOSET_{role.name}_ADDR"] = f"127.0.0.1:{port}"
        # Its own redis-server and store; plaintext on loopback without keys or metrics, as the bench clients call it.
        for name in _NOT_CARRIED:
            self.env.pop(name, None)
        self.env.update(KLOSET_DATA_DIR=str(data_dir), KLOSET_HOST="127.0.0.1", **env)
        self.log = data_dir / "serve.log"
        self.process: subprocess.Popen | None = None

    def addr(self, role: Role) -> str:
        return self.env[f"KLOSET_{role.name}_ADDR"]

    def start(self, timeout_s: float = 300) -> "TemporaryStack":
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([_KLOSET, "serve"], env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise Unavailable(f"kloset serve exited at start: {self._tail()}")
            if all(self._serving(role) for role in Role):
                return self
            time.sleep(0.3)
        self.stop()
        raise Unavailable(f"kloset serve did not become healthy in {timeout_s:.0f} s: {self._tail()}")

    def _tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    def _serving(self, role: Role) -> bool:
        with grpc.insecure_channel(self.addr(role)) as channel:
            try:
                answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
            except grpc.RpcError:
                return False
        return answer.status == health_pb2.HealthCheckResponse.SERVING

    def rss_mb(self) -> float:
        """Resident memory of the serve process itself (not the redis-server it started)."""
        import psutil

        assert self.process is not None
        return psutil.Process(self.process.pid).memory_info().rss / 2**20

    def stop(self, timeout_s: float = 60) -> None:
        """SIGTERM, as an operator would: the store flushes and the queue's jobs stay safe."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> "TemporaryStack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
