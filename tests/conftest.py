"""Shared fixtures: synthetic catalog, a tiny trained model, a real redis-server, running kloset roles."""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kloset.core.config import Role, Settings
from kloset.core.ingest.embedded_redis import EmbeddedRedis
from kloset.core.ingest.queue import IngestQueue, connect
from kloset.core.telemetry import Metrics

CCP_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "ccp"
TINY_INPUT_SIZE = 32
# Settings() reads the environment: a KLOSET_* variable left in the developer's shell would change what every test
# sees. They are taken out before any test module is imported; a test that wants one sets it (monkeypatch.setenv)
# or passes values explicitly (role_settings). tests/test_isolation.py proves it.
SHELL_SETTINGS = {name: os.environ.pop(name) for name in list(os.environ) if name.startswith("KLOSET_")}


@pytest.fixture(scope="session")
def ccp_dir() -> Path:
    """The real CCP data set in K-Fashion format, beside the repository (CI has it); skip without it."""
    if not (CCP_DIR / "labels").is_dir():
        pytest.skip(f"{CCP_DIR} is not here")
    return CCP_DIR


@pytest.fixture(scope="session")
def sample_catalog(tmp_path_factory) -> Path:
    from kloset.core.garments.sample import write_sample_catalog

    root = tmp_path_factory.mktemp("sample")
    write_sample_catalog(root, n=30, seed=1)
    return root


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, sample_catalog) -> Path:
    """Heads trained end to end on the synthetic catalog at 32 px: the real code path, in seconds."""
    from kloset.core.models.training import extract_features, train_heads

    out = tmp_path_factory.mktemp("model")
    features = extract_features(sample_catalog, TINY_INPUT_SIZE, None, None)
    train_heads(features, input_size=TINY_INPUT_SIZE, out_dir=out, epochs=25, source="sample")
    return out


@pytest.fixture(scope="session")
def tiny_segmenter_dir(tmp_path_factory, sample_catalog) -> Path:
    """The segmenter trained end to end on the synthetic catalog at 96 x 64."""
    from kloset.core.models.segmenter_training import extract_maps, train_segmenter

    out = tmp_path_factory.mktemp("segmenter")
    maps = extract_maps(sample_catalog, 96, 64, None)
    train_segmenter(maps, height=96, width=64, out_dir=out, epochs=15, source="sample")
    return out


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    yield server.start()
    server.stop()


@pytest.fixture
def metrics() -> Metrics:
    """The test's own metrics, in a registry of their own: no other test's jobs or calls are counted in them."""
    return Metrics()


@pytest.fixture
def queue(redis_url, metrics) -> IngestQueue:
    """A queue on its own stream, so tests never see each other's jobs; it counts into the test's metrics."""
    stream = f"test:{uuid.uuid4().hex[:8]}"
    q = IngestQueue(connect(redis_url), stream=stream, claim_idle_ms=200, max_deliveries=3, metrics=metrics)
    q.ensure_group()
    return q


def role_settings(tmp: Path, model_dir: Path, segmenter_dir: Path | None = None, **overrides) -> Settings:
    """Settings for roles on free ports with every piece of state under tmp."""
    values = dict(
        data_dir=tmp,
        model_dir=model_dir,
        segmenter_dir=segmenter_dir or tmp / "no-segmenter",
        host="127.0.0.1",
        attribute_port=0,
        search_port=0,
        ingest_port=0,
        worker_port=0,
        workers=2,
        claim_idle_ms=2000,
    )
    values.update(overrides)
    return Settings(**values)


def client_env(program) -> dict[str, str]:
    """Environment that points the kloset CLI at a running Program's roles."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLOSET_")}
    for server in program.servers:
        env[f"KLOSET_{Role(server.name).name}_ADDR"] = f"127.0.0.1:{server.port}"
    return env


@pytest.fixture(scope="module")
def kloset(tmp_path_factory, tiny_model_dir, tiny_segmenter_dir) -> Iterator:
    """Every role in this process (the embedded default): real gRPC, real redis-server, Qdrant local mode."""
    from kloset.program import Program

    settings = role_settings(tmp_path_factory.mktemp("kloset"), tiny_model_dir, tiny_segmenter_dir)
    program = Program(settings, frozenset(Role))
    program.start()
    yield program
    program.stop()


@pytest.fixture
def cli_env(kloset, monkeypatch) -> dict[str, str]:
    env = client_env(kloset)
    for key, value in env.items():
        if key.startswith("KLOSET_"):
            monkeypatch.setenv(key, value)
    return env
