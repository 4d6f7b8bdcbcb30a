"""services/server.py: the limits every role's server enforces, and the dedicated pool for calls that run the
models (they never hold the threads cheap calls need)."""

import threading
from concurrent import futures

import grpc
import pytest
from kloset.services.server import start_server

from tests.waiting import wait_until


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


SLOW, FAST = "/test.Pools/Slow", "/test.Pools/Fast"


def identity(data: bytes) -> bytes:
    return data


class Pools:
    """Slow blocks until released (a model call under load) and records its thread; Fast answers at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.slow_threads: list[str] = []

    def slow(self, request: bytes, context) -> bytes:
        self.slow_threads.append(threading.current_thread().name)
        self.release.wait(30)
        return b"slow"

    def fast(self, request: bytes, context) -> bytes:
        return b"fast"

    def register(self, server: grpc.Server) -> None:
        handlers = {
            name: grpc.unary_unary_rpc_method_handler(
                method, request_deserializer=identity, response_serializer=identity
            )
            for name, method in (("Slow", self.slow), ("Fast", self.fast))
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Pools", handlers),))


def serve(pools: Pools, dedicated: tuple[str, ...]):
    return start_server("test", "127.0.0.1", 0, pools.register, [], max_message_bytes=1 << 20, threads=2,
                        dedicated_methods=dedicated, dedicated_threads=1)  # fmt: skip


def slow_calls_then_a_fast_one(dedicated: tuple[str, ...]) -> tuple[Pools, bytes | grpc.StatusCode]:
    pools = Pools()
    server = serve(pools, dedicated)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            slow, fast = channel.unary_unary(SLOW), channel.unary_unary(FAST)
            pending = [slow.future(b"", timeout=30) for _ in range(6)]  # three times the server's threads
            # Every thread that can take a slow call has one before the fast call goes out: 1 on the pool, else
            # both server threads.
            busy = 1 if dedicated else 2
            wait_until(lambda: len(pools.slow_threads) >= busy, what=f"{busy} slow calls to start", interval_s=0.01,
                       detail=lambda: pools.slow_threads)  # fmt: skip
            try:
                answer = fast(b"", timeout=3)
            except grpc.RpcError as exc:
                answer = exc.code()
            pools.release.set()
            assert [p.result() for p in pending] == [b"slow"] * 6  # queued, none refused or lost
        return pools, answer
    finally:
        pools.release.set()
        server.stop(0)


def test_a_cheap_call_answers_while_model_calls_fill_their_pool():
    pools, answer = slow_calls_then_a_fast_one((SLOW,))
    assert answer == b"fast"
    assert set(pools.slow_threads) == {"grpc-test-model_0"}  # one thread, the six calls one after another


def test_without_the_pool_the_cheap_call_waits_behind_them():
    """The contrast the pool exists for: slow calls take both server threads and the fast one times out."""
    _, answer = slow_calls_then_a_fast_one(())
    assert answer == grpc.StatusCode.DEADLINE_EXCEEDED


@pytest.mark.parametrize("dedicated", [(SLOW,), ()])
def test_stop_ends_the_pool_with_the_server(dedicated):
    pools = Pools()
    server = serve(pools, dedicated)
    server.stop(0)
    assert all(isinstance(p, futures.ThreadPoolExecutor) and p._shutdown for p in server.pools)
    assert len(server.pools) == len(dedicated)
