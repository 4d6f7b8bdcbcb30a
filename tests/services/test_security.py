"""API keys and TLS, over real gRPC on loopback: the attribute role and the other roles in separate servers (as in
docker-compose), both listening with TLS and wanting keys, the roles calling each other with the key."""

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from kloset.services.channels import open_channel

from kloset.bench.stack import free_port
from kloset.core.config import Role
from kloset.core.errors import Unavailable
from kloset.core.ingest.embedded_redis import find_redis_server
from kloset.core.request_context import RequestIdFilter
from kloset.program import Program
from kloset.v1 import attribute_pb2, attribute_pb2_grpc, ingest_pb2, ingest_pb2_grpc, search_pb2, search_pb2_grpc
from tests.conftest import role_settings
from tests.services.certificates import self_signed
from tests.waiting import wait_until

KLOSET = str(Path(sys.executable).parent / "kloset")
KEYS = "key-one,key-two"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def attribute(tmp_path_factory, tiny_model_dir, tiny_segmenter_dir, certificate):
    cert, key = certificate
    settings = role_settings(tmp_path_factory.mktemp("attribute"), tiny_model_dir, tiny_segmenter_dir,
                             api_keys=KEYS, tls_cert=cert, tls_key=key)  # fmt: skip
    program = Program(settings, frozenset({Role.ATTRIBUTE}))
    program.start()
    yield program
    program.stop()


def address(program: Program, role: Role) -> str:
    return f"localhost:{next(s.port for s in program.servers if s.name == role.value)}"


def rest_of_kloset(tmp: Path, attribute: Program, certificate, api_key: str) -> Program:
    """Search, ingest and workers in their own servers, calling the attribute role over TLS with api_key."""
    cert, key = certificate
    settings = role_settings(
        tmp, tmp / "no-model-here", api_keys=KEYS, api_key=api_key, tls_cert=cert, tls_key=key, tls_ca=cert,
        attribute_addr=address(attribute, Role.ATTRIBUTE),
    )  # fmt: skip
    return Program(settings, frozenset({Role.SEARCH, Role.INGEST, Role.WORKER}))


@pytest.fixture(scope="module")
def rest(tmp_path_factory, attribute, certificate):
    program = rest_of_kloset(tmp_path_factory.mktemp("rest"), attribute, certificate, api_key="key-two")
    program.start()
    yield program
    program.stop()


def client(tmp: Path, certificate, api_key: str | None = None, **extra):
    """Client-side settings: trusting the test certificate, sending api_key."""
    return role_settings(tmp, tmp, tls_ca=certificate[0], api_key=api_key, **extra)


def search_stub(rest: Program, settings) -> search_pb2_grpc.SearchServiceStub:
    return search_pb2_grpc.SearchServiceStub(open_channel(settings, address(rest, Role.SEARCH)))


def refused(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def photo(sample_catalog: Path, stem: str = "0001") -> bytes:
    return (sample_catalog / "images" / f"{stem}.jpg").read_bytes()


def test_a_call_without_a_key_is_unauthenticated(rest, tmp_path, certificate):
    error = refused(lambda: search_stub(rest, client(tmp_path, certificate)).GetIndexStats(
        search_pb2.GetIndexStatsRequest(), timeout=10))  # fmt: skip
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "authorization: Bearer <key>" in error.details()


def test_a_wrong_key_is_unauthenticated_and_never_echoed(rest, tmp_path, certificate, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(RequestIdFilter())
    stub = search_stub(rest, client(tmp_path, certificate, api_key="key-one-but-wrong"))
    error = refused(lambda: stub.GetIndexStats(search_pb2.GetIndexStatsRequest(), timeout=10,
                                               metadata=[("x-request-id", "auth-trace-3")]))  # fmt: skip
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error.details() == "the API key is not valid"
    assert "key-one" not in caplog.text  # neither the offered key nor an accepted one is logged
    [why] = [r for r in caplog.records if r.getMessage().startswith("refused /kloset.v1.SearchService/")]
    assert why.request_id == "auth-trace-3" and "not valid" in why.getMessage()


def test_a_key_without_the_bearer_scheme_is_unauthenticated(rest, tmp_path, certificate):
    stub = search_stub(rest, client(tmp_path, certificate))
    error = refused(lambda: stub.GetIndexStats(search_pb2.GetIndexStatsRequest(), timeout=10,
                                               metadata=[("authorization", "key-one")]))  # fmt: skip
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "Bearer" in error.details()


@pytest.mark.parametrize("key", ["key-one", "key-two"])
def test_every_accepted_key_opens_every_service(rest, attribute, tmp_path, certificate, sample_catalog, key):
    settings = client(tmp_path, certificate, api_key=key)
    assert search_stub(rest, settings).GetIndexStats(search_pb2.GetIndexStatsRequest(), timeout=10) is not None
    ingest = ingest_pb2_grpc.IngestServiceStub(open_channel(settings, address(rest, Role.INGEST)))
    assert ingest.GetQueueStats(ingest_pb2.GetQueueStatsRequest(), timeout=10) is not None
    classify = attribute_pb2_grpc.AttributeServiceStub(open_channel(settings, address(attribute, Role.ATTRIBUTE)))
    answer = classify.Classify(attribute_pb2.ClassifyRequest(image=photo(sample_catalog)), timeout=30)
    assert answer.garments and answer.model_version


def test_health_and_reflection_stay_open_without_a_key(rest, tmp_path, certificate):
    channel = open_channel(client(tmp_path, certificate), address(rest, Role.SEARCH))
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    [answer] = reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                               timeout=10)  # fmt: skip
    assert "kloset.v1.SearchService" in {s.name for s in answer.list_services_response.service}


def test_roles_call_each_other_with_the_key(rest, tmp_path, certificate, sample_catalog):
    """Search classifies through the attribute role, and a worker indexes a submitted photo through it."""
    settings = client(tmp_path, certificate, api_key="key-one")
    search = search_stub(rest, settings)
    answer = search.SearchByImage(search_pb2.SearchByImageRequest(image=photo(sample_catalog)), timeout=30)
    assert answer.garments
    ingest = ingest_pb2_grpc.IngestServiceStub(open_channel(settings, address(rest, Role.INGEST)))
    job = ingest.Submit(ingest_pb2.SubmitRequest(
        image=photo(sample_catalog), label_json=(sample_catalog / "labels" / "0001.json").read_bytes(),
        filename="0001.jpg"), timeout=30).job  # fmt: skip

    def finished():
        now = ingest.GetJob(ingest_pb2.GetJobRequest(job_id=job.job_id), timeout=10).job
        return now if now.state in (ingest_pb2.JOB_STATE_DONE, ingest_pb2.JOB_STATE_FAILED) else None

    job = wait_until(finished, 60, what=f"job {job.job_id} to finish", interval_s=0.1)
    assert job.state == ingest_pb2.JOB_STATE_DONE, job.error


def test_a_role_with_a_wrong_key_cannot_use_the_attribute_role(tmp_path, attribute, certificate, sample_catalog):
    search = rest_of_kloset(tmp_path / "wrong", attribute, certificate, api_key="not-a-key")
    search.roles = frozenset({Role.SEARCH})
    search.start()
    try:
        stub = search_stub(search, client(tmp_path, certificate, api_key="key-one"))
        error = refused(lambda: stub.SearchByImage(search_pb2.SearchByImageRequest(image=photo(sample_catalog)),
                                                   timeout=30))  # fmt: skip
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert "attribute service: UNAUTHENTICATED" in error.details()
        assert "not-a-key" not in error.details()
    finally:
        search.stop()


def test_a_plaintext_client_cannot_talk_to_a_tls_server(rest):
    channel = grpc.insecure_channel(address(rest, Role.SEARCH))
    error = refused(lambda: health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5))
    assert error.code() == grpc.StatusCode.UNAVAILABLE


def test_a_client_that_does_not_trust_the_certificate_is_refused(rest, tmp_path, certificate):
    other_ca, _ = self_signed(tmp_path / "other")
    settings = role_settings(tmp_path, tmp_path, tls_ca=other_ca, api_key="key-one")
    channel = open_channel(settings, address(rest, Role.SEARCH))
    error = refused(lambda: health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5))
    assert error.code() == grpc.StatusCode.UNAVAILABLE


def test_the_cli_sends_the_key_over_tls_and_says_when_it_is_missing(rest, certificate):
    base = {k: v for k, v in os.environ.items() if not k.startswith("KLOSET_")}
    env = {**base, "KLOSET_SEARCH_ADDR": address(rest, Role.SEARCH), "KLOSET_INGEST_ADDR": address(rest, Role.INGEST),
           "KLOSET_TLS_CA": str(certificate[0])}  # fmt: skip
    ok = subprocess.run([KLOSET, "stats", "--json"], env={**env, "KLOSET_API_KEY": "key-two"},
                        capture_output=True, text=True, timeout=60)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    missing = subprocess.run([KLOSET, "stats"], env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0
    assert "UNAUTHENTICATED" in missing.stderr and "KLOSET_API_KEY" in missing.stderr


@pytest.fixture
def secured_redis(tmp_path, certificate):
    """A real redis-server that wants a password and speaks only TLS (skipped where it was built without TLS)."""
    cert, key = certificate
    port = free_port()
    server = subprocess.Popen(
        [find_redis_server(), "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert),
         "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
         "--requirepass", "redis-secret", "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip

    def listening_or_exited() -> bool:
        if server.poll() is not None:
            return True
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return False

    wait_until(listening_or_exited, 10, what=f"redis-server to listen on TLS port {port}", interval_s=0.05)
    if server.poll() is not None:
        pytest.skip(f"this redis-server cannot serve TLS: {server.stdout.read()[-300:]}")
    yield f"rediss://localhost:{port}/0"
    server.terminate()
    server.wait(10)


def test_the_queue_reaches_redis_over_tls_with_a_password(secured_redis, tmp_path, certificate):
    cert, key = certificate
    settings = role_settings(tmp_path, tmp_path, redis_url=secured_redis, redis_password="redis-secret",
                             tls_ca=cert, tls_cert=cert, tls_key=key)  # fmt: skip
    program = Program(settings, frozenset({Role.INGEST}))
    program.start()
    try:
        stub = ingest_pb2_grpc.IngestServiceStub(open_channel(settings, f"localhost:{program.servers[0].port}"))
        assert stub.GetQueueStats(ingest_pb2.GetQueueStatsRequest(), timeout=10).queued == 0
    finally:
        program.stop()


def test_a_wrong_redis_password_stops_the_start_without_showing_it(secured_redis, tmp_path, certificate):
    settings = role_settings(tmp_path, tmp_path, redis_url=secured_redis, redis_password="not-the-password",
                             tls_ca=certificate[0])  # fmt: skip
    with pytest.raises(Unavailable, match="invalid username-password pair") as info:
        Program(settings, frozenset({Role.INGEST})).start()
    assert "not-the-password" not in str(info.value)
