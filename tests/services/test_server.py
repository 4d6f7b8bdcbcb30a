"""services/server.py: the limits every role's server enforces."""

import threading

import grpc
import pytest
from kloset.services.server import start_server


def _slow_server(release: threading.Event, started: threading.Event, limit: int):
    def wait(request: bytes, context) -> bytes:
        started.set()
        release.wait(10)
        return request

    handler = grpc.method_handlers_generic_handler(
        "test.Slow", {"Wait": grpc.unary_unary_rpc_method_handler(wait)}
    )
    return start_server("test", "127.0.0.1", 0, lambda server: server.add_generic_rpc_handlers((handler,)), [],
                        max_message_bytes=1 << 20, threads=4, max_concurrent_rpcs=limit)  # fmt: skip


def test_calls_beyond_max_concurrent_rpcs_are_refused_with_resource_exhausted():
    release, started = threading.Event(), threading.Event()
    server = _slow_server(release, started, limit=1)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    call = channel.unary_unary("/test.Slow/Wait")
    try:
        first = call.future(b"one", timeout=10)
        assert started.wait(5)
        with pytest.raises(grpc.RpcError) as refused:
            call(b"two", timeout=5)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        release.set()
        assert first.result() == b"one"
        assert call(b"three", timeout=5) == b"three"  # the slot is free again
    finally:
        release.set()
        channel.close()
        server.stop(0)
