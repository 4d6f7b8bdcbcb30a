"""gRPC stubs for the CLI and the benchmarks, addressed by the same settings the services use."""

from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kloset.core.config import Role, Settings
from kloset.services.channels import open_channel
from kloset.v1 import attribute_pb2_grpc, ingest_pb2_grpc, search_pb2_grpc


class CommandError(Exception):
    """A failure the CLI reports as one line on stderr and a non-zero exit."""


def message_too_large(error: grpc.RpcError) -> bool:
    """gRPC's own refusal of a message over its size limit, on either side: sending it again cannot help."""
    return error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "message larger than max" in (error.details() or "")


def rpc_message(error: grpc.RpcError) -> str:
    code = error.code()
    if message_too_large(error):
        return (
            f"RESOURCE_EXHAUSTED: {error.details()}: a message is larger than KLOSET_MAX_MESSAGE_BYTES allows "
            "(the limit of the server and of this client, in bytes)"
        )
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"service unavailable ({error.details()}); is `kloset serve` running?"
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return f"UNAUTHENTICATED: {error.details()} (set KLOSET_API_KEY)"
    return f"{code.name}: {error.details()}"


def _channel(settings: Settings, role: Role) -> grpc.Channel:
    """TLS and the API key as the services' settings say (services.channels)."""
    return open_channel(settings, settings.addr_of(role))


@dataclass
class Clients:
    settings: Settings

    def attribute(self) -> attribute_pb2_grpc.AttributeServiceStub:
        return attribute_pb2_grpc.AttributeServiceStub(_channel(self.settings, Role.ATTRIBUTE))

    def search(self) -> search_pb2_grpc.SearchServiceStub:
        return search_pb2_grpc.SearchServiceStub(_channel(self.settings, Role.SEARCH))

    def ingest(self) -> ingest_pb2_grpc.IngestServiceStub:
        return ingest_pb2_grpc.IngestServiceStub(_channel(self.settings, Role.INGEST))

    def health(self, role: Role, timeout_s: float = 3.0) -> str:
        """The role's grpc.health.v1 status name, or why it could not be asked."""
        stub = health_pb2_grpc.HealthStub(_channel(self.settings, role))
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
        except grpc.RpcError as exc:
            return f"UNREACHABLE ({exc.code().name})"
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
