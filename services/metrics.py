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
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from kloset.core.index.store import GarmentStore
from kloset.core.ingest.queue import IngestQueue

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


def watch_process(
    registry: CollectorRegistry, queue: IngestQueue | None = None, store: GarmentStore | None = None
) -> None:
    """Add to registry (a Program's, holding the core's Metrics) the process itself, and the queue's depth and
    the catalog's size when this process holds them: read from the live queue and store at each scrape."""
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    if queue is not None:
        registry.register(QueueCollector(queue))
    if store is not None:
        registry.register(CatalogCollector(store))


class QueueCollector(Collector):
    """The ingest queue's depth, read from Redis at each scrape (one round trip)."""

    def __init__(self, queue: IngestQueue) -> None:
        self._queue = queue

    def describe(self) -> Iterator[Metric]:
        return iter(_queue_families())

    def collect(self) -> Iterator[Metric]:
        try:
            stats = self._queue.stats()
        except Exception as exc:  # a scrape must not fail because Redis is away: the series go missing instead
            log.warning("metrics: no queue depth this scrape: %s", exc)
            return iter(())
        queued, pending, dead = _queue_families()
        queued.add_metric([], stats.queued)
        pending.add_metric([], stats.pending)
        dead.add_metric([], stats.dead_lettered)
        return iter((queued, pending, dead))


def _queue_families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
    return (
        GaugeMetricFamily("kloset_queue_queued_jobs", "Jobs in the queue not yet delivered to a worker."),
        GaugeMetricFamily("kloset_queue_pending_jobs", "Jobs delivered to a worker and not yet acknowledged."),
        GaugeMetricFamily("kloset_queue_dead_letter_jobs", "Jobs in the dead letters."),
    )


class CatalogCollector(Collector):
    """Garments per model_version, read from the store's payload index at each scrape (a facet count)."""

    def __init__(self, store: GarmentStore) -> None:
        self._store = store

    def describe(self) -> Iterator[Metric]:
        return iter([_catalog_family()])

    def collect(self) -> Iterator[Metric]:
        try:
            versions = self._store.model_versions()
        except Exception as exc:  # the store away or closing: the series go missing instead of the scrape failing
            log.warning("metrics: no catalog size this scrape: %s", exc)
            return iter(())
        family = _catalog_family()
        for version, count in sorted(versions.items()):
            family.add_metric([version], count)
        return iter([family])


def _catalog_family() -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "kloset_catalog_garments", "Garments in the catalog, by the model version that indexed them.",
        labels=["model_version"],
    )  # fmt: skip
