"""The channels' retry policy on a real gRPC server: a call in RETRIED_CALLS that fails UNAVAILABLE is sent again
by gRPC itself; other codes and other calls are not; README's service config is the one the channels use."""

import json
import re
import threading
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from kloset.services.channels import RETRIED_CALLS, open_channel, service_config

from kloset.core.config import Settings
from kloset.v1 import attribute_pb2, attribute_pb2_grpc, search_pb2, search_pb2_grpc

README = Path(__file__).resolve().parents[2] / "README.md"


class FlakyServer:
    """Answers Classify and Reindex with `code` for the first `failures` attempts, then with a response."""

    def __init__(self, failures: int, code: grpc.StatusCode) -> None:
        self.failures, self.code = failures, code
        self.attempts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(4))
        handlers = {
            "Classify": grpc.unary_unary_rpc_method_handler(
                self._classify, attribute_pb2.ClassifyRequest.FromString,
                attribute_pb2.ClassifyResponse.SerializeToString,
            ),
        }  # fmt: skip
        reindex = {
            "Reindex": grpc.unary_stream_rpc_method_handler(
                self._reindex, search_pb2.ReindexRequest.FromString, search_pb2.ReindexResponse.SerializeToString
            ),
        }
        self._server.add_generic_rpc_handlers((
            grpc.method_handlers_generic_handler("kloset.v1.AttributeService", handlers),
            grpc.method_handlers_generic_handler("kloset.v1.SearchService", reindex),
        ))  # fmt: skip
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    def _fail_first(self, method: str, context: grpc.ServicerContext) -> None:
        with self._lock:
            self.attempts[method] = self.attempts.get(method, 0) + 1
            failing = self.attempts[method] <= self.failures
        if failing:
            context.abort(self.code, f"{method} attempt failing on purpose")

    def _classify(self, request, context):
        self._fail_first("Classify", context)
        return attribute_pb2.ClassifyResponse(model_version="v-test")

    def _reindex(self, request, context):
        self._fail_first("Reindex", context)
        yield search_pb2.ReindexResponse()

    def stop(self) -> None:
        self._server.stop(None)


@pytest.fixture
def channel_to(tmp_path):
    servers, channels = [], []

    def open_to(failures: int, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE):
        server = FlakyServer(failures, code)
        channel = open_channel(Settings(data_dir=tmp_path), f"127.0.0.1:{server.port}")
        servers.append(server)
        channels.append(channel)
        return server, channel

    yield open_to
    for channel in channels:
        channel.close()
    for server in servers:
        server.stop()


def test_a_retried_call_that_fails_unavailable_is_sent_again_until_it_succeeds(channel_to):
    server, channel = channel_to(failures=2)
    answer = attribute_pb2_grpc.AttributeServiceStub(channel).Classify(attribute_pb2.ClassifyRequest(), timeout=10)
    assert answer.model_version == "v-test" and server.attempts["Classify"] == 3


def test_it_gives_up_after_the_policys_attempts_with_the_servers_status(channel_to):
    server, channel = channel_to(failures=10)
    with pytest.raises(grpc.RpcError) as info:
        attribute_pb2_grpc.AttributeServiceStub(channel).Classify(attribute_pb2.ClassifyRequest(), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert server.attempts["Classify"] == json.loads(service_config())["methodConfig"][0]["retryPolicy"]["maxAttempts"]


def test_other_codes_are_not_retried(channel_to):
    server, channel = channel_to(failures=1, code=grpc.StatusCode.INVALID_ARGUMENT)
    with pytest.raises(grpc.RpcError) as info:
        attribute_pb2_grpc.AttributeServiceStub(channel).Classify(attribute_pb2.ClassifyRequest(), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and server.attempts["Classify"] == 1


def test_a_call_not_safe_to_repeat_is_not_retried(channel_to):
    server, channel = channel_to(failures=1)
    assert "Reindex" not in RETRIED_CALLS["kloset.v1.SearchService"]
    with pytest.raises(grpc.RpcError) as info:
        list(search_pb2_grpc.SearchServiceStub(channel).Reindex(search_pb2.ReindexRequest(), timeout=10))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE and server.attempts["Reindex"] == 1


def test_every_retried_call_is_an_rpc_of_kloset_v1():
    from kloset.v1 import attribute_pb2 as a
    from kloset.v1 import ingest_pb2 as i
    from kloset.v1 import search_pb2 as s

    services = {d.full_name: d for m in (a, i, s) for d in m.DESCRIPTOR.services_by_name.values()}
    for service, methods in RETRIED_CALLS.items():
        assert set(methods) <= set(services[service].methods_by_name), service


def test_readme_shows_the_service_config_the_channels_use():
    block = re.search(r"<!-- service-config -->\s*```json\n(.*?)```", README.read_text(), re.S)
    assert block, "README has no service config block"
    assert json.loads(block.group(1)) == json.loads(service_config())
