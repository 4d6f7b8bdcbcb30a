"""Helpers for fault tests: `kloset serve` as a real process on free ports, and a look into its Qdrant folder."""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kloset.bench.stack import free_port
from kloset.core.config import Role
from kloset.v1 import ingest_pb2, ingest_pb2_grpc
from tests.waiting import wait_until

KLOSET = str(Path(sys.executable).parent / "kloset")


class Serve:
    """`kloset serve [--role ...]` in its own process, with all state under data_dir."""

    def __init__(self, data_dir: Path, models: tuple[Path, Path], roles: str = "all", **env: str) -> None:
        self.roles = roles
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KLOSET_")}
        for role in Role:
            port = free_port()
            self.env[f"KLOSET_{role.name}_PORT"] = str(port)
            self.env[f"KLOSET_{role.name}_ADDR"] = f"127.0.0.1:{port}"
        self.env.update(
            KLOSET_DATA_DIR=str(data_dir), KLOSET_MODEL_DIR=str(models[0]), KLOSET_SEGMENTER_DIR=str(models[1]),
            KLOSET_WORKERS="2",
            KLOSET_CLAIM_IDLE_MS="1500", KLOSET_RETRY_BACKOFF_S="0.1",
        )  # fmt: skip
        self.env.update(env)
        self.log = data_dir.parent / f"serve-{data_dir.name}-{roles.replace(',', '-')}.log"
        self.process: subprocess.Popen | None = None

    def addr(self, role: Role) -> str:
        return self.env[f"KLOSET_{role.name}_ADDR"]

    def start(self, timeout_s: float = 120) -> "Serve":
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([KLOSET, "serve", "--role", self.roles], env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT)  # fmt: skip
        roles = list(Role) if self.roles == "all" else [Role(r) for r in self.roles.split(",")]

        def serving() -> bool:
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            return all(self._serving(role) for role in roles)

        wait_until(serving, timeout_s, what=f"kloset serve --role {self.roles} to become healthy", interval_s=0.1,
                   detail=lambda: self.log.read_text()[-3000:])  # fmt: skip
        return self

    def _serving(self, role: Role) -> bool:
        stub = health_pb2_grpc.HealthStub(grpc.insecure_channel(self.addr(role)))
        try:
            status = stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
        except grpc.RpcError:
            return False
        return status == health_pb2.HealthCheckResponse.SERVING

    def ingest(self) -> ingest_pb2_grpc.IngestServiceStub:
        return ingest_pb2_grpc.IngestServiceStub(grpc.insecure_channel(self.addr(Role.INGEST)))

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def models(tiny_model_dir, tiny_segmenter_dir) -> tuple[Path, Path]:
    return tiny_model_dir, tiny_segmenter_dir


@pytest.fixture
def serves() -> Iterator[list[Serve]]:
    """Collects every Serve a test starts and stops them all afterwards."""
    started: list[Serve] = []
    yield started
    for serve in started:
        serve.stop()


def submit_request(catalog: Path, stem: str) -> ingest_pb2.SubmitRequest:
    return ingest_pb2.SubmitRequest(
        image=(catalog / "images" / f"{stem}.jpg").read_bytes(),
        label_json=(catalog / "labels" / f"{stem}.json").read_bytes(),
        filename=f"{stem}.jpg",
    )


def wait_until_drained(stub, job_ids: list[str], timeout_s: float = 120) -> dict[str, ingest_pb2.Job]:
    """Poll until every job is done or failed and nothing is queued or pending."""
    last = {}

    def drained():
        jobs = {j: stub.GetJob(ingest_pb2.GetJobRequest(job_id=j), timeout=10).job for j in job_ids}
        last["stats"] = stats = stub.GetQueueStats(ingest_pb2.GetQueueStatsRequest(), timeout=10)
        finished = all(j.state in (ingest_pb2.JOB_STATE_DONE, ingest_pb2.JOB_STATE_FAILED) for j in jobs.values())
        return jobs if finished and stats.queued == 0 and stats.pending == 0 else None

    return wait_until(drained, timeout_s, what="every job to finish and the queue to drain", interval_s=0.25,
                      detail=lambda: last.get("stats"))  # fmt: skip


def stored_item_ids(data_dir: Path) -> list[str]:
    """Every item id in the store of a kloset data folder, on its default backend (once kloset has let go)."""
    from kloset.core.config import Settings
    from kloset.core.index.stores import open_store

    store = open_store(Settings(data_dir=data_dir))
    try:
        return [g.item_id for batch in store.scan(256) for g in batch]
    finally:
        store.close()


def report(name: str, **counts: int) -> None:
    """The counts the issue asks to report, in the test log (pytest -s or -rA shows them)."""
    print(f"\nFAULT {name}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
