"""One program, many roles: `kloset serve` runs every role in this process, `--role X` runs some of them.

Roles talk through the same interfaces either way: when the attribute role runs here, search and workers call
its engine directly; otherwise they call the attribute service at KLOSET_ATTRIBUTE_ADDR.
"""

import logging
import os
import signal
import socket
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import grpc

from kloset.core.classifier import AttributeClassifier, AttributeEngine
from kloset.core.config import Role, Settings
from kloset.core.index.garment_images import GarmentImages
from kloset.core.index.indexing import GarmentIndexer
from kloset.core.index.optimizer import BackgroundOptimizer
from kloset.core.index.outfits import OutfitFinder
from kloset.core.index.reindex import CatalogReindexer
from kloset.core.index.search import SearchEngine
from kloset.core.index.store import GarmentStore, StoreBackend
from kloset.core.index.stores import open_store
from kloset.core.ingest.blobs import BlobStore
from kloset.core.ingest.catalog import CatalogIngest
from kloset.core.ingest.embedded_redis import EmbeddedRedis
from kloset.core.ingest.queue import IngestQueue, connect
from kloset.core.models.loading import load_attribute_model, load_segmenter
from kloset.core.models.runtime import configure_threads
from kloset.core.telemetry import Metrics
from kloset.services.access_log import AccessLogger
from kloset.services.attribute.client import RemoteAttributeClassifier
from kloset.services.attribute.servicer import MODEL_METHODS as ATTRIBUTE_MODEL_METHODS
from kloset.services.attribute.servicer import SERVICE_NAME as ATTRIBUTE_SERVICE
from kloset.services.attribute.servicer import AttributeServicer
from kloset.services.auth import ApiKeyInterceptor
from kloset.services.channels import open_channel, server_credentials
from kloset.services.ingest.servicer import SERVICE_NAME as INGEST_SERVICE
from kloset.services.ingest.servicer import IngestServicer
from kloset.services.interceptors import AroundInterceptor, request_scope
from kloset.services.metrics import MetricsServer, start_metrics_server, watch_process
from kloset.services.search.servicer import MODEL_METHODS as SEARCH_MODEL_METHODS
from kloset.services.search.servicer import SERVICE_NAME as SEARCH_SERVICE
from kloset.services.search.servicer import SearchServicer
from kloset.services.server import RoleServer, start_server
from kloset.workers.ingest_worker import IngestWorker

log = logging.getLogger(__name__)
_SIGNAL_POLL_S = 0.2  # how soon a SIGTERM is acted on


@dataclass
class Program:
    settings: Settings
    roles: frozenset[Role]
    servers: list[RoleServer] = field(default_factory=list)
    metrics: MetricsServer | None = None  # when KLOSET_METRICS_PORT is set
    telemetry: Metrics = field(default_factory=Metrics)  # what this program's parts record, in a registry of its own
    stopping: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _closers: list = field(default_factory=list)
    failure: str = ""  # why a background thread (a worker, the optimizer) died: `kloset serve` then exits 1

    def start(self) -> None:
        """Bring up the dependencies each role needs, then the roles; fail fast on any start-up error."""
        s = self.settings
        try:
            classifier = self._classifier() if self.roles & {Role.ATTRIBUTE, Role.SEARCH, Role.WORKER} else None
            # The ingest role reads the catalog too where it can (in this process, or on a Qdrant server), so that a
            # photo whose garments were deleted or lost is queued again instead of answered as a duplicate.
            wants_store = self.roles & {Role.SEARCH, Role.WORKER} or (
                Role.INGEST in self.roles and s.store_backend is StoreBackend.SERVER
            )
            store = self._store() if wants_store else None
            queue = self._queue() if self.roles & {Role.INGEST, Role.WORKER} else None
            blobs = BlobStore(s.blob_root) if self.roles & {Role.INGEST, Role.SEARCH, Role.WORKER} else None
            self._start_metrics(queue, store)
            if Role.ATTRIBUTE in self.roles:
                servicer = AttributeServicer(classifier, s.input_limits)
                self._serve(Role.ATTRIBUTE, servicer.register, [ATTRIBUTE_SERVICE])
            if Role.SEARCH in self.roles:
                engine = SearchEngine(
                    classifier, store, s.top_k, policy=s.filter_policy, weights=s.ranking_weights,
                    candidates=s.search_candidates, max_top_k=s.max_top_k,
                )  # fmt: skip
                outfits = OutfitFinder(engine, store, similar=s.outfit_similar)
                images = GarmentImages(store, blobs, s.max_image_pixels, s.max_garment_images)
                reindexer = CatalogReindexer(classifier, store, blobs, s.input_limits, batch_photos=s.batch_garments)
                search = SearchServicer(engine, outfits, images, s.input_limits, store, reindexer)
                self._serve(Role.SEARCH, search.register, [SEARCH_SERVICE])
            if Role.INGEST in self.roles:
                catalog = CatalogIngest(queue, blobs, s.input_limits, store)
                ingest = IngestServicer(
                    catalog, queue, max_batch_items=s.max_batch_items, max_watchers=s.max_watchers,
                    max_job_ids=s.max_job_ids,
                )  # fmt: skip
                self._serve(Role.INGEST, ingest.register, [INGEST_SERVICE])
            if Role.WORKER in self.roles:
                indexer = GarmentIndexer(classifier, store, blobs, s.input_limits)
                self._start_workers(queue, indexer)
                self._serve(Role.WORKER, lambda server: None, [])
        except BaseException:
            self.stop()
            raise

    def _classifier(self) -> AttributeClassifier:
        s = self.settings
        if Role.ATTRIBUTE in self.roles:
            intra, inter = configure_threads(s.tf_intra_op_threads, s.tf_inter_op_threads)  # before any op runs
            model = load_attribute_model(s, metrics=self.telemetry)
            model.warm_up()  # before the role reports SERVING
            segmenter = load_segmenter(s, metrics=self.telemetry)
            log.info("attribute model %s, segmenter %s, runtime %s, threads %d/%d", model.version, segmenter.version,
                     s.model_runtime.value, intra, inter)  # fmt: skip
            return AttributeEngine(
                model, s.max_image_pixels, segmenter, max_garments=s.max_garments_per_request,
                batch_garments=s.batch_garments, batch_wait_ms=s.batch_wait_ms,
            )  # fmt: skip
        remote = RemoteAttributeClassifier(open_channel(s, s.attribute_addr), timeout_s=s.call_timeout_s)
        self._closers.append(remote.close)
        return remote

    def _store(self) -> GarmentStore:
        s = self.settings
        store = open_store(s, metrics=self.telemetry)
        self._closers.append(store.close)  # after the workers and the optimizer have stopped: flushes every write
        log.info("vector store: %s", s.store_backend.value)
        optimizer = BackgroundOptimizer(
            store, self.stopping, idle_s=s.optimize_idle_s, min_points=s.optimize_min_points
        )
        self._start_thread(optimizer.run, "optimizer")
        return store

    def _queue(self) -> IngestQueue:
        s = self.settings
        url = s.redis_url
        if url is None:
            embedded = EmbeddedRedis(s.redis_dir, s.redis_server_bin, s.redis_appendfsync)
            url = embedded.start()
            self._closers.append(embedded.stop)  # closed last (closers run in reverse), after the workers
            log.info("embedded redis-server (%s) at %s", embedded.binary, url)
        password = s.redis_password.get_secret_value() if s.redis_password else None
        client = connect(url, password, str(s.tls_ca) if s.tls_ca else None)
        self._closers.append(client.close)
        queue = IngestQueue(
            client,
            stream=s.stream,
            group=s.consumer_group,
            job_ttl_s=s.job_ttl_s,
            claim_idle_ms=s.claim_idle_ms,
            max_deliveries=s.max_deliveries,
            max_backlog=s.max_backlog,
            metrics=self.telemetry,
        )
        queue.ensure_group()
        return queue

    def _start_metrics(self, queue: IngestQueue | None, store: GarmentStore | None) -> None:
        """/metrics for this process, before any server starts, so every server's calls are counted."""
        s = self.settings
        if s.metrics_port is not None:
            watch_process(self.telemetry.registry, queue=queue, store=store)
            self.metrics = start_metrics_server(s.host, s.metrics_port, self.telemetry.registry)
            self._closers.append(self.metrics.stop)  # closed before the store and queue it reads (reverse order)

    def _serve(self, role: Role, register, service_names: Iterable[str]) -> None:
        s = self.settings
        server = start_server(
            role.value,
            s.host,
            s.port_of(role),
            register,
            list(service_names),
            max_message_bytes=s.max_message_bytes,
            threads=s.grpc_threads,
            max_concurrent_rpcs=s.max_concurrent_rpcs,
            interceptors=self._interceptors(),
            credentials=server_credentials(s),
            dedicated_methods=(*SEARCH_MODEL_METHODS, *ATTRIBUTE_MODEL_METHODS) if s.model_call_threads else (),
            dedicated_threads=s.model_call_threads,
        )
        self.servers.append(server)

    def _interceptors(self) -> list[grpc.ServerInterceptor]:
        """Outermost first: metrics (so refused calls are counted too), the request's id and deadline for
        everything after, then the API key check."""
        keys = self.settings.scoped_api_keys
        metrics = [self.metrics.interceptor] if self.metrics else []
        scope = partial(request_scope, access_log=AccessLogger.from_settings(self.settings))
        return [*metrics, AroundInterceptor(scope), *([ApiKeyInterceptor(keys)] if keys else [])]

    def _start_workers(self, queue: IngestQueue, indexer: GarmentIndexer) -> None:
        s = self.settings
        host = socket.gethostname()
        pool = ThreadPoolExecutor(s.prepare_threads or os.cpu_count() or 1, thread_name_prefix="prepare")
        self._closers.append(pool.shutdown)  # after the workers have stopped
        for i in range(s.workers):
            # A stable consumer name lets a restarted worker pick up its own unacknowledged jobs first.
            worker = IngestWorker(
                queue, indexer, f"{host}-{i}", self.stopping, s.retry_backoff_s,
                batch_garments=s.batch_garments, batch_wait_ms=s.batch_wait_ms, prepare_pool=pool,
                metrics=self.telemetry,
            )  # fmt: skip
            self._start_thread(worker.run, f"worker-{i}")

    def _start_thread(self, target, name: str) -> None:
        thread = threading.Thread(target=self._guarded, args=(target, name), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _guarded(self, target, name: str) -> None:
        """Run a background loop; if it ends before the program stops (it raised, or returned), the process is
        broken: every role turns NOT_SERVING and the program stops, so that a supervisor restarts it."""
        try:
            target()
            why = "returned"
        except BaseException as exc:
            why = f"raised {type(exc).__name__}: {exc}"
            log.exception("%s died", name)
        if self.stopping.is_set():
            return
        self.failure = f"the {name} thread {why} while the program was running"
        log.critical("%s: turning every role NOT_SERVING and stopping", self.failure)
        for server in self.servers:
            server.health.enter_graceful_shutdown()
        self.stopping.set()

    def wait(self) -> None:
        """Block until SIGTERM or SIGINT (or a background thread died), then stop gracefully."""
        received: list[int] = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            # Only a plain append in the handler: it runs on the main thread, possibly inside stopping.wait()
            # while that holds the event's lock, and stopping.set() there would deadlock (seen: a SIGTERMed
            # `kloset serve` that never exited).
            signal.signal(sig, lambda signum, _frame: received.append(signum))
        while not received and not self.stopping.wait(_SIGNAL_POLL_S):
            pass
        self.stopping.set()
        log.info("stopping")
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        for server in self.servers:
            server.stop(self.settings.shutdown_grace_s)
        for thread in self._threads:
            thread.join(timeout=max(self.settings.shutdown_grace_s, 30.0))
        for close in reversed(self._closers):
            try:
                close()
            except Exception:
                log.exception("error while shutting down")
        self._closers.clear()
