"""Building one gRPC server per role: explicit message limits, health checking, reflection, graceful stop."""

import logging
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

log = logging.getLogger(__name__)


@dataclass
class RoleServer:
    name: str
    server: grpc.Server
    health: health.HealthServicer
    port: int

    def stop(self, grace_s: float) -> None:
        """Report NOT_SERVING first, so balancers drain us, then let in-flight calls finish."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace_s).wait()


def start_server(
    name: str,
    host: str,
    port: int,
    register: Callable[[grpc.Server], None],
    service_names: Sequence[str],
    *,
    max_message_bytes: int,
    threads: int,
    max_concurrent_rpcs: int | None = None,
    interceptors: Sequence[grpc.ServerInterceptor] = (),
    credentials: grpc.ServerCredentials | None = None,
) -> RoleServer:
    """Start a server with the role's servicers plus grpc.health.v1 and reflection; port 0 picks a free one.

    interceptors run outermost first, on every method (health and reflection too: each decides what to skip);
    credentials: listen with TLS, else plaintext."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"grpc-{name}"),
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.so_reuseport", 0),
        ],
        maximum_concurrent_rpcs=max_concurrent_rpcs,  # beyond it grpc answers RESOURCE_EXHAUSTED at once
        interceptors=list(interceptors),
    )
    register(server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for service in ("", *service_names):
        health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (*service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
    )
    try:
        address = f"{host}:{port}"
        bound = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    except RuntimeError:  # newer grpcio raises instead of returning 0
        bound = 0
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port} for the {name} role (port in use?)")
    server.start()
    log.info("%s role listening on %s:%d%s", name, host, bound, " (TLS)" if credentials else "")
    return RoleServer(name=name, server=server, health=health_servicer, port=bound)
