"""A request's id and deadline across roles, and the graceful stop: the search role and the attribute role in
separate servers on loopback, with a probe on the attribute role's server that records what each call brought
(and can hold a call, standing in for a busy attribute service)."""

import threading
import time
from dataclasses import dataclass, field

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from kloset.services.interceptors import AroundInterceptor

from kloset.core import request_context
from kloset.core.config import Role
from kloset.program import Program
from kloset.v1 import attribute_pb2, attribute_pb2_grpc, search_pb2, search_pb2_grpc
from tests.conftest import role_settings
from tests.waiting import wait_until

CALL_TIMEOUT_S = 42.0


@dataclass
class Seen:
    method: str
    request_id: str | None
    remaining_s: float | None
    code: grpc.StatusCode | None = None
    details: str | None = None


@dataclass
class ProbedProgram(Program):
    """The real Program with one more interceptor innermost: it records each call and may hold it first."""

    seen: list[Seen] = field(default_factory=list)
    hold_s: float = 0.0
    finished: threading.Event = field(default_factory=threading.Event)

    def _interceptors(self) -> list[grpc.ServerInterceptor]:
        return [*super()._interceptors(), AroundInterceptor(self._probe)]

    def _probe(self, method: str, context: grpc.ServicerContext):
        program = self

        class Probe:
            def __enter__(self):
                self.seen = Seen(method, request_context.request_id(), request_context.remaining_s())
                program.seen.append(self.seen)
                time.sleep(program.hold_s)  # the behaviour under test: a busy attribute service, not a wait

            def __exit__(self, *exc):
                self.seen.code, self.seen.details = context.code(), context.details()
                program.finished.set()
                return False

        return Probe()


@pytest.fixture(scope="module")
def attribute(tmp_path_factory, tiny_model_dir, tiny_segmenter_dir):
    program = ProbedProgram(role_settings(tmp_path_factory.mktemp("attribute"), tiny_model_dir, tiny_segmenter_dir),
                            frozenset({Role.ATTRIBUTE}))  # fmt: skip
    program.start()
    yield program
    program.stop()


def address(program: Program, role: Role) -> str:
    return f"127.0.0.1:{next(s.port for s in program.servers if s.name == role.value)}"


@pytest.fixture(scope="module")
def search(tmp_path_factory, attribute):
    tmp = tmp_path_factory.mktemp("search")
    settings = role_settings(tmp, tmp / "no-model-here", attribute_addr=address(attribute, Role.ATTRIBUTE),
                             call_timeout_s=CALL_TIMEOUT_S)  # fmt: skip
    program = Program(settings, frozenset({Role.SEARCH}))
    program.start()
    stub = search_pb2_grpc.SearchServiceStub(grpc.insecure_channel(address(program, Role.SEARCH)))
    yield stub
    program.stop()


@pytest.fixture
def probe(attribute):
    attribute.seen.clear()
    attribute.finished.clear()
    attribute.hold_s = 0.0
    yield attribute
    attribute.hold_s = 0.0


def photo(sample_catalog) -> bytes:
    return (sample_catalog / "images" / "0001.jpg").read_bytes()


def test_the_attribute_role_gets_the_callers_remaining_deadline_and_request_id(search, probe, sample_catalog):
    request = search_pb2.SearchByImageRequest(image=photo(sample_catalog))
    _, call = search.SearchByImage.with_call(request, timeout=8, metadata=[("x-request-id", "trace-17")])
    [seen] = probe.seen
    assert seen.method == "/kloset.v1.AttributeService/Classify"
    assert seen.request_id == "trace-17"
    assert 6 < seen.remaining_s < 8.5  # what was left of the caller's 8 s, not the role's own 42 s
    assert seen.code is None  # OK
    assert ("x-request-id", "trace-17") in call.initial_metadata()


def test_without_a_deadline_a_role_waits_at_most_its_call_timeout_and_makes_up_an_id(search, probe, sample_catalog):
    _, call = search.SearchByImage.with_call(search_pb2.SearchByImageRequest(image=photo(sample_catalog)))
    [seen] = probe.seen
    assert CALL_TIMEOUT_S - 3 < seen.remaining_s < CALL_TIMEOUT_S + 0.5  # grpc's clock rounds a little
    made_up = dict(call.initial_metadata())["x-request-id"]
    assert len(made_up) == 32 and seen.request_id == made_up  # the same id in both roles' logs


def test_a_request_that_runs_out_is_deadline_exceeded_and_the_work_behind_it_stops(search, probe, sample_catalog):
    probe.hold_s = 1.0  # the attribute role is busy for longer than the caller will wait
    with pytest.raises(grpc.RpcError) as info:
        search.SearchByImage(search_pb2.SearchByImageRequest(image=photo(sample_catalog)), timeout=0.5)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert probe.finished.wait(10)
    [seen] = probe.seen
    # The attribute role found the deadline passed and ran neither the segmenter nor the forward pass for it.
    assert seen.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "the deadline passed before segmentation" in seen.details.decode()


def test_graceful_stop_finishes_a_call_in_flight_and_refuses_new_ones(
    tmp_path, tiny_model_dir, tiny_segmenter_dir, sample_catalog
):
    settings = role_settings(tmp_path, tiny_model_dir, tiny_segmenter_dir, shutdown_grace_s=10)
    program = ProbedProgram(settings, frozenset({Role.ATTRIBUTE}))
    program.start()
    program.hold_s = 1.5
    channel = grpc.insecure_channel(address(program, Role.ATTRIBUTE))
    stub = attribute_pb2_grpc.AttributeServiceStub(channel)
    in_flight = stub.Classify.future(attribute_pb2.ClassifyRequest(image=photo(sample_catalog)), timeout=30)
    wait_until(lambda: program.seen, what="the call to reach the attribute role's probe")
    stopping = threading.Thread(target=program.stop)
    stopping.start()
    health = health_pb2_grpc.HealthStub(channel)

    def refused() -> grpc.RpcError | None:
        try:
            health.Check(health_pb2.HealthCheckRequest(), timeout=2)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.CANCELLED:
                return None  # sent just as the stop began: the server cancels it before it says UNAVAILABLE
            return exc
        return None  # the stop has not begun yet (or health says NOT_SERVING, the server still taking calls)

    error = wait_until(refused, 5, what="the stopping server to refuse new calls")
    assert not in_flight.done()  # refused while the held call was still in flight, not after it
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert in_flight.result().garments  # the call in flight was answered in full
    stopping.join(30)
    assert not stopping.is_alive()


def test_calls_to_several_attribute_replicas_are_spread_over_them(
    tmp_path, attribute, tiny_model_dir, tiny_segmenter_dir, sample_catalog
):
    """Replicas behind one name (DNS in compose; an ipv4: list here) each get calls: round_robin, not pick_first."""
    second = ProbedProgram(role_settings(tmp_path / "second", tiny_model_dir, tiny_segmenter_dir),
                           frozenset({Role.ATTRIBUTE}))  # fmt: skip
    second.start()
    replicas = [address(p, Role.ATTRIBUTE) for p in (attribute, second)]
    settings = role_settings(tmp_path / "search", tmp_path / "no-model-here",
                             attribute_addr="ipv4:" + ",".join(replicas))  # fmt: skip
    search = Program(settings, frozenset({Role.SEARCH}))
    search.start()
    try:
        attribute.seen.clear()
        stub = search_pb2_grpc.SearchServiceStub(grpc.insecure_channel(address(search, Role.SEARCH)))
        for _ in range(6):
            stub.SearchByImage(search_pb2.SearchByImageRequest(image=photo(sample_catalog)), timeout=30)
        assert len(attribute.seen) >= 2 and len(second.seen) >= 2
        assert len(attribute.seen) + len(second.seen) == 6
    finally:
        search.stop()
        second.stop()
