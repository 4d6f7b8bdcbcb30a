"""The roles as docker-compose runs them, as separate `kloset serve --role` processes on loopback with the
environment compose gives them (docker-compose.yml's and the Dockerfile's), since Docker cannot pull images here.

What compose points at other containers is pointed at this machine: Redis at a real redis-server, role addresses
at loopback ports. No Qdrant server installs here, so search and workers share one process on Qdrant Edge (in
compose they are separate containers on the Qdrant server); attribute and ingest run alone, as in compose.
"""

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
import pytest
import yaml

from kloset.bench.stack import free_port
from kloset.core.config import Role
from kloset.v1 import search_pb2, search_pb2_grpc
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
KLOSET = str(Path(sys.executable).parent / "kloset")
PROCESSES = {"attribute": "attribute", "ingest": "ingest", "search-worker": "search,worker"}
KEY = "compose-key"


def compose_environment() -> dict[str, str]:
    """What every kloset container gets: the Dockerfile's ENV, then docker-compose.yml's environment."""
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    env = dict(re.findall(r"(KLOSET_\w+)=(\S+)", dockerfile))
    env.update(yaml.safe_load((ROOT / "docker-compose.yml").read_text())["x-kloset"]["environment"])
    return env


def loopback_environment(tmp: Path, redis_url: str, models: tuple[Path, Path]) -> dict[str, str]:
    env = compose_environment()
    assert env["KLOSET_API_KEYS"].startswith("${KLOSET_API_KEYS:?")  # compose refuses to start without keys
    assert env["KLOSET_API_KEY"].startswith("${KLOSET_API_KEY:?")
    del env["KLOSET_QDRANT_URL"]  # Qdrant Edge in the search-and-workers process instead
    env.update(
        KLOSET_HOST="127.0.0.1", KLOSET_DATA_DIR=str(tmp), KLOSET_REDIS_URL=redis_url,
        KLOSET_MODEL_DIR=str(models[0]), KLOSET_SEGMENTER_DIR=str(models[1]),
        KLOSET_API_KEYS=f"{KEY},another-key", KLOSET_API_KEY=KEY,
        # Every call's access line, so a test can follow one request across the roles (the default samples them).
        KLOSET_ACCESS_LOG="all", KLOSET_MODEL_CACHE_DIR=str(tmp / "model-cache"),
    )  # fmt: skip
    for role in Role:
        port = free_port()
        env[f"KLOSET_{role.name}_PORT"] = str(port)
        env[f"KLOSET_{role.name}_ADDR"] = f"127.0.0.1:{port}"
    return env


@pytest.fixture(scope="module")
def stack(tmp_path_factory, redis_url, tiny_model_dir, tiny_segmenter_dir):
    tmp = tmp_path_factory.mktemp("compose")
    env = loopback_environment(tmp / "var", redis_url, (tiny_model_dir, tiny_segmenter_dir))
    base = {k: v for k, v in os.environ.items() if not k.startswith("KLOSET_")}
    processes, logs, metrics = {}, {}, {}
    try:
        for name, roles in PROCESSES.items():
            metrics[name] = free_port()
            logs[name] = tmp / f"{name}.log"
            with logs[name].open("w") as log:
                processes[name] = subprocess.Popen(
                    [KLOSET, "serve", "--role", roles],
                    env={**base, **env, "KLOSET_METRICS_PORT": str(metrics[name])},
                    stdout=log, stderr=subprocess.STDOUT,
                )  # fmt: skip

        def healthy() -> bool:
            for name, process in processes.items():
                assert process.poll() is None, f"{name} exited: {logs[name].read_text()[-3000:]}"
            return subprocess.run([KLOSET, "health"], env={**base, **env}, capture_output=True).returncode == 0

        wait_until(healthy, 180, what="the roles to become healthy", interval_s=0.25)
        yield {"env": {**base, **env}, "logs": logs, "metrics": metrics}
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()


def kloset(stack, *args: str, key: str | None = KEY) -> subprocess.CompletedProcess:
    env = {k: v for k, v in stack["env"].items() if k != "KLOSET_API_KEY"}
    if key is not None:
        env["KLOSET_API_KEY"] = key
    return subprocess.run([KLOSET, *map(str, args)], env=env, capture_output=True, text=True, timeout=180)


def test_ingest_then_search_across_the_role_processes(stack, sample_catalog):
    ingested = kloset(stack, "ingest", sample_catalog, "--limit", "3", "--wait", "--json")
    assert ingested.returncode == 0, ingested.stderr
    assert json.loads(ingested.stdout)["done"] == 3
    found = kloset(stack, "search", "--item", "0001/top", "--json")
    assert found.returncode == 0, found.stderr
    refused = kloset(stack, "stats", key=None)
    assert refused.returncode != 0 and "UNAUTHENTICATED" in refused.stderr


def test_a_search_and_its_attribute_call_log_one_request_id_as_json(stack, sample_catalog):
    channel = grpc.insecure_channel(stack["env"]["KLOSET_SEARCH_ADDR"])
    search = search_pb2_grpc.SearchServiceStub(channel)
    image = (sample_catalog / "images" / "0002.jpg").read_bytes()
    metadata = [("authorization", f"Bearer {KEY}"), ("x-request-id", "compose-trace-7")]
    search.SearchByImage(search_pb2.SearchByImageRequest(image=image), timeout=60, metadata=metadata)

    def traced(name: str) -> list[dict]:
        """The whole JSON lines the process has written so far with the request's id."""
        text = stack["logs"][name].read_text()
        records = [json.loads(line) for line in text.splitlines(keepends=True) if line.startswith("{") and
                   line.endswith("\n")]  # fmt: skip
        return [r for r in records if r.get("request_id") == "compose-trace-7"]

    # Each process writes its access log line as the call ends, the attribute role's maybe a moment after.
    wait_until(lambda: any("SearchService/SearchByImage OK" in r["message"] for r in traced("search-worker")),
               what="the search role's access log line for compose-trace-7")  # fmt: skip
    wait_until(lambda: any("AttributeService/Classify OK" in r["message"] for r in traced("attribute")),
               what="the attribute role's access log line for compose-trace-7")  # fmt: skip
    assert KEY not in "".join(path.read_text() for path in stack["logs"].values())  # the key is never logged


def test_every_process_serves_its_metrics(stack):
    for name, port in stack["metrics"].items():
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert "grpc_server_handled_total" in text, name
    ingest = urllib.request.urlopen(f"http://127.0.0.1:{stack['metrics']['ingest']}/metrics", timeout=10).read()
    assert b"kloset_queue_queued_jobs" in ingest
