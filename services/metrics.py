"""Prometheus metrics over HTTP (/metrics, one server per process) and the interceptor that counts gRPC calls.

The gRPC series have go-grpc-prometheus's names and labels (grpc_server_started_total, grpc_server_handled_total
with grpc_code, grpc_server_handling_seconds; grpc_type, grpc_service, grpc_method), so its dashboards and alerts
work as they are. py-grpc-prometheus was not used: it never counts a call with a streaming response as handled
(nor times it), and reads the status code from a private attribute of grpc's context.
"""

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from wsgiref.simple_server import WSGIServer

import grpc
from kloset.services.interceptors import status_of, wrap_handler
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

log = logging.getLogger(__name__)

_LABELS = ("grpc_type", "grpc_service", "grpc_method")


class GrpcMetricsInterceptor(grpc.ServerInterceptor):
    """Counts and times every call of a registered method, streams included, by method and status code.

    Put it outermost, so calls that later interceptors refuse (e.g. UNAUTHENTICATED) are counted too. A method
    no server registered never reaches it (grpc answers UNIMPLEMENTED), so a caller cannot invent label values.
    Calls refused by KLOSET_MAX_CONCURRENT_RPCS are not counted either: grpc refuses them before any handler runs.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._started = Counter(
            "grpc_server_started_total", "Total number of RPCs started on the server.", _LABELS, registry=registry
        )
        self._handled = Counter(
            "grpc_server_handled_total", "Total number of RPCs completed on the server, regardless of success or "
            "failure.", (*_LABELS, "grpc_code"), registry=registry,
        )  # fmt: skip
        self._seconds = Histogram(
            "grpc_server_handling_seconds", "Histogram of response latency (seconds) of gRPC that had been "
            "application-level handled by the server.", _LABELS, registry=registry,
        )  # fmt: skip

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        labels = call_labels(handler_call_details.method, handler)
        return wrap_handler(handler, handler_call_details.method, partial(self._measure, labels))

    @contextmanager
    def _measure(self, labels: tuple[str, str, str], method: str, context: grpc.ServicerContext) -> Iterator[None]:
        self._started.labels(*labels).inc()
        start = time.perf_counter()
        failed = True
        try:
            yield
            failed = False
        finally:
            self._seconds.labels(*labels).observe(time.perf_counter() - start)
            self._handled.labels(*labels, status_of(context, failed).name).inc()


def call_labels(method: str, handler: grpc.RpcMethodHandler) -> tuple[str, str, str]:
    """grpc_type, grpc_service and grpc_method of a call to "/package.Service/Method"."""
    service, _, name = method.lstrip("/").rpartition("/")
    kind = {
        (False, False): "unary",
        (True, False): "client_stream",
        (False, True): "server_stream",
        (True, True): "bidi_stream",
    }[(bool(handler.request_streaming), bool(handler.response_streaming))]
    return kind, service, name


@dataclass
class MetricsServer:
    """/metrics of one registry over HTTP, and the gRPC interceptor that feeds it."""

    interceptor: GrpcMetricsInterceptor
    port: int
    _httpd: WSGIServer
    _thread: threading.Thread

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def start_metrics_server(host: str, port: int, registry: CollectorRegistry) -> MetricsServer:
    """Serve registry (plus the gRPC series) at http://host:port/metrics; port 0 picks a free one."""
    interceptor = GrpcMetricsInterceptor(registry)
    try:
        httpd, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise OSError(f"cannot serve metrics on {host}:{port} (KLOSET_METRICS_PORT in use?): {exc}") from None
    bound = httpd.server_port
    log.info("metrics at http://%s:%d/metrics", host, bound)
    return MetricsServer(interceptor=interceptor, port=bound, _httpd=httpd, _thread=thread)
