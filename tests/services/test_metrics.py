"""/metrics end to end: roles started with KLOSET_METRICS_PORT, real gRPC calls, a real scrape over HTTP.

A real redis-server and Qdrant Edge behind them; every check compares two scrapes, because the core's metrics
are one set per process and other tests in this process move them too.
"""

import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from kloset.services.interceptors import refusing_handler
from kloset.services.metrics import start_metrics_server
from kloset.services.server import start_server
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from kloset.bench.stack import free_port
from kloset.core.config import Role
from kloset.core.ingest.queue import IngestQueue, connect
from kloset.v1 import attribute_pb2, attribute_pb2_grpc, ingest_pb2, ingest_pb2_grpc
from tests.conftest import role_settings
from tests.waiting import wait_until

ATTRIBUTE = "kloset.v1.AttributeService"
INGEST = "kloset.v1.IngestService"
HEALTH = "grpc.health.v1.Health"


class Scrape:
    """One answer of /metrics, as values by name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._values = {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def __call__(self, name: str, **labels: str) -> float:
        return self._values.get((name, frozenset(labels.items())), 0.0)

    def labels_of(self, name: str) -> list[dict[str, str]]:
        return [dict(labels) for n, labels in self._values if n == name]


def scrape(port: int) -> Scrape:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        assert answer.status == 200
        return Scrape(answer.read().decode())


def rpc(service: str, method: str, code: str = "OK", kind: str = "unary") -> dict[str, str]:
    labels = {"grpc_type": kind, "grpc_service": service, "grpc_method": method}
    return {**labels, "grpc_code": code} if code else labels


def ingest_settings(tmp_path_factory, redis_url: str, **overrides):
    """The ingest role alone loads no model: its model folder may stay empty."""
    tmp = tmp_path_factory.mktemp("metrics")
    return role_settings(tmp, tmp / "no-model", redis_url=redis_url, stream=f"metrics:{uuid.uuid4().hex[:8]}",
                         **overrides)  # fmt: skip


@pytest.fixture(scope="module")
def serving(tmp_path_factory, tiny_model_dir, tiny_segmenter_dir, redis_url) -> Iterator:
    """Every role, one worker, metrics on."""
    from kloset.program import Program

    s = role_settings(
        tmp_path_factory.mktemp("metrics"), tiny_model_dir, tiny_segmenter_dir, workers=1, metrics_port=free_port(),
        redis_url=redis_url, stream=f"metrics:{uuid.uuid4().hex[:8]}",
    )  # fmt: skip
    program = Program(s, frozenset(Role))
    program.start()
    yield program
    program.stop()


@pytest.fixture(scope="module")
def backlog(tmp_path_factory, redis_url) -> Iterator:
    """The ingest role alone (no worker drains its queue), metrics on."""
    from kloset.program import Program

    program = Program(ingest_settings(tmp_path_factory, redis_url, metrics_port=free_port()), frozenset({Role.INGEST}))
    program.start()
    yield program
    program.stop()


def stub(program, role: str, make):
    return make(grpc.insecure_channel(f"127.0.0.1:{next(s.port for s in program.servers if s.name == role)}"))


def submit(program, sample_catalog, stem: str) -> ingest_pb2.Job:
    request = ingest_pb2.SubmitRequest(
        image=(sample_catalog / "images" / f"{stem}.jpg").read_bytes(),
        label_json=(sample_catalog / "labels" / f"{stem}.json").read_bytes(),
        filename=f"{stem}.jpg",
    )
    return stub(program, "ingest", ingest_pb2_grpc.IngestServiceStub).Submit(request, timeout=30).job


def test_calls_are_counted_by_method_and_code_and_timed(serving, sample_catalog):
    classify = stub(serving, "attribute", attribute_pb2_grpc.AttributeServiceStub).Classify
    before = scrape(serving.metrics.port)
    classify(attribute_pb2.ClassifyRequest(image=(sample_catalog / "images" / "0001.jpg").read_bytes()), timeout=60)
    with pytest.raises(grpc.RpcError) as refused:
        classify(attribute_pb2.ClassifyRequest(image=b"this is not an image"), timeout=60)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    after = scrape(serving.metrics.port)

    def moved(name: str, **labels: str) -> float:
        return after(name, **labels) - before(name, **labels)

    assert moved("grpc_server_handled_total", **rpc(ATTRIBUTE, "Classify")) == 1
    assert moved("grpc_server_handled_total", **rpc(ATTRIBUTE, "Classify", "INVALID_ARGUMENT")) == 1
    assert moved("grpc_server_started_total", **rpc(ATTRIBUTE, "Classify", code="")) == 2
    assert moved("grpc_server_handling_seconds_count", **rpc(ATTRIBUTE, "Classify", code="")) == 2
    assert moved("grpc_server_handling_seconds_bucket", **rpc(ATTRIBUTE, "Classify", code=""), le="+Inf") == 2
    assert moved("kloset_model_forward_seconds_count", model="attributes") >= 1
    assert moved("kloset_model_forward_seconds_count", model="segmenter") >= 1


def test_a_streaming_call_is_counted_when_its_stream_ends(serving):
    watch = stub(serving, "ingest", ingest_pb2_grpc.IngestServiceStub).WatchJob
    before = scrape(serving.metrics.port)
    with pytest.raises(grpc.RpcError) as unknown:
        list(watch(ingest_pb2.WatchJobRequest(job_id="nope"), timeout=10))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    labels = rpc(INGEST, "WatchJob", "NOT_FOUND", kind="server_stream")
    assert scrape(serving.metrics.port)("grpc_server_handled_total", **labels) == before(
        "grpc_server_handled_total", **labels) + 1  # fmt: skip


def test_an_indexed_job_moves_jobs_done_the_catalog_and_the_store_latency(serving, sample_catalog):
    before = scrape(serving.metrics.port)
    job = submit(serving, sample_catalog, "0002")
    watch = stub(serving, "ingest", ingest_pb2_grpc.IngestServiceStub).WatchJob
    [*_, last] = watch(ingest_pb2.WatchJobRequest(job_id=job.job_id), timeout=60)
    assert last.job.state == ingest_pb2.JOB_STATE_DONE, last.job.error
    version = stub(serving, "attribute", attribute_pb2_grpc.AttributeServiceStub).Classify(
        attribute_pb2.ClassifyRequest(image=(sample_catalog / "images" / "0002.jpg").read_bytes()), timeout=60
    ).model_version
    after = scrape(serving.metrics.port)
    assert after("kloset_ingest_jobs_total", outcome="done") == before("kloset_ingest_jobs_total", outcome="done") + 1
    assert after.labels_of("kloset_catalog_garments") == [{"model_version": version}]
    assert after("kloset_catalog_garments", model_version=version) == len(last.job.item_ids) > 0
    assert after("kloset_store_seconds_count", operation="upsert") > before(
        "kloset_store_seconds_count", operation="upsert")  # fmt: skip
    assert (after("kloset_queue_queued_jobs"), after("kloset_queue_pending_jobs")) == (0, 0)
    assert "kloset_queue_dead_letter_jobs 0.0" in after.text


def test_queue_gauges_follow_submitted_jobs(backlog, sample_catalog, redis_url):
    port = backlog.metrics.port
    assert scrape(port)("kloset_queue_queued_jobs") == 0
    for stem in ("0003", "0004"):
        submit(backlog, sample_catalog, stem)
    assert scrape(port)("kloset_queue_queued_jobs") == 2
    queue = IngestQueue(connect(redis_url), stream=backlog.settings.stream)
    [delivery] = queue.read("test-worker", count=1, block_ms=100)
    now = scrape(port)
    assert (now("kloset_queue_queued_jobs"), now("kloset_queue_pending_jobs")) == (1, 1)
    queue.fail(delivery, "given up by the test")
    now = scrape(port)
    assert (now("kloset_queue_pending_jobs"), now("kloset_queue_dead_letter_jobs")) == (0, 1)
    assert now.labels_of("kloset_catalog_garments") == []  # the ingest role holds no store


def test_without_a_metrics_port_nothing_listens(tmp_path_factory, redis_url):
    from kloset.program import Program

    def listening() -> set[int]:
        return {c.laddr.port for c in psutil.Process().net_connections("tcp") if c.status == psutil.CONN_LISTEN}

    before = listening()
    program = Program(ingest_settings(tmp_path_factory, redis_url), frozenset({Role.INGEST}))
    program.start()
    try:
        assert program.metrics is None
        assert listening() - before == {server.port for server in program.servers}
    finally:
        program.stop()


def test_the_metrics_server_stops_with_the_program(tmp_path_factory, redis_url):
    from kloset.program import Program

    port = free_port()
    program = Program(ingest_settings(tmp_path_factory, redis_url, metrics_port=port), frozenset({Role.INGEST}))
    program.start()
    assert scrape(port)("kloset_queue_queued_jobs") == 0
    program.stop()
    with pytest.raises(urllib.error.URLError):
        scrape(port)


# -- the interceptor on its own server: what the roles' calls rarely show ----------------------------------------


class RefuseChecks(grpc.ServerInterceptor):
    """Stands in for an inner interceptor that refuses calls (the API key check)."""

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler_call_details.method.endswith("/Check"):
            return refusing_handler(handler, handler_call_details.method, grpc.StatusCode.UNAUTHENTICATED, "no key")
        return handler


@pytest.fixture
def health_server() -> Iterator[tuple[int, int]]:
    """A server with health only, the metrics interceptor outermost: (gRPC port, metrics port)."""
    metrics = start_metrics_server("127.0.0.1", 0, CollectorRegistry())
    server = start_server("health", "127.0.0.1", 0, lambda server: None, [], max_message_bytes=1 << 20, threads=4,
                          interceptors=[metrics.interceptor, RefuseChecks()])  # fmt: skip
    yield server.port, metrics.port
    server.stop(0)
    metrics.stop()


def test_a_call_an_inner_interceptor_refuses_is_counted_with_its_code(health_server):
    grpc_port, metrics_port = health_server
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(f"127.0.0.1:{grpc_port}"))
    with pytest.raises(grpc.RpcError) as refused:
        health.Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert scrape(metrics_port)("grpc_server_handled_total", **rpc(HEALTH, "Check", "UNAUTHENTICATED")) == 1


def test_a_stream_past_its_deadline_or_cancelled_is_counted_so(health_server):
    grpc_port, metrics_port = health_server
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(f"127.0.0.1:{grpc_port}"))
    with pytest.raises(grpc.RpcError) as late:
        list(health.Watch(health_pb2.HealthCheckRequest(), timeout=0.5))
    assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    watching = health.Watch(health_pb2.HealthCheckRequest(), timeout=30)
    next(watching)
    watching.cancel()

    def handled(code: str) -> float:
        return scrape(metrics_port)("grpc_server_handled_total", **rpc(HEALTH, "Watch", code, kind="server_stream"))

    for code in ("DEADLINE_EXCEEDED", "CANCELLED"):
        wait_until(lambda code=code: handled(code) == 1, what=f"the {code} Watch to be counted once", interval_s=0.05,
                   detail=lambda code=code: f"grpc_server_handled_total = {handled(code)}")  # fmt: skip


def test_a_call_without_the_api_key_is_counted_as_unauthenticated(tmp_path_factory, redis_url):
    """The metrics interceptor is outermost in every role's server: the key check's refusals are counted."""
    from kloset.program import Program

    s = ingest_settings(tmp_path_factory, redis_url, metrics_port=free_port(), api_keys="a-key-never-shown")
    program = Program(s, frozenset({Role.INGEST}))
    program.start()
    try:
        with pytest.raises(grpc.RpcError) as refused:
            stub(program, "ingest", ingest_pb2_grpc.IngestServiceStub).GetQueueStats(
                ingest_pb2.GetQueueStatsRequest(), timeout=10
            )
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        now = scrape(program.metrics.port)
        assert now("grpc_server_handled_total", **rpc(INGEST, "GetQueueStats", "UNAUTHENTICATED")) == 1
        assert "a-key-never-shown" not in now.text
    finally:
        program.stop()
