"""Channels to kloset roles, for the CLI and for roles calling each other: TLS, the API key, the request id and
the caller's deadline are set here and nowhere else. The servers' side (TLS credentials) lives here too, so one
module reads the certificate settings."""

import collections
import json

import grpc
from kloset.services.interceptors import REQUEST_ID_HEADER

from kloset.core import request_context
from kloset.core.config import Settings
from kloset.core.errors import DeadlineExceeded


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS for every server when KLOSET_TLS_CERT and KLOSET_TLS_KEY are set; None: plaintext."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    return grpc.ssl_server_credentials([(settings.tls_key.read_bytes(), settings.tls_cert.read_bytes())])


def channel_credentials(settings: Settings) -> grpc.ChannelCredentials | None:
    """TLS trusting KLOSET_TLS_CA (else the system store) when the client side of TLS is on; None: plaintext."""
    if not settings.client_tls:
        return None
    return grpc.ssl_channel_credentials(root_certificates=settings.tls_ca.read_bytes() if settings.tls_ca else None)


# The calls gRPC itself sends again when they fail UNAVAILABLE (a replica restarting, a connection reset, Redis or
# the store away for a moment): those that change nothing, and Submit, which the queue answers with the same job
# for the same photo. Reindex, WatchJob and the dead-letter writes are not: a second one is not the same call.
RETRIED_CALLS = {
    "kloset.v1.AttributeService": ("Classify",),
    "kloset.v1.SearchService": ("SearchByImage", "SearchByItem", "GetIndexStats", "CompleteLook", "GetGarmentImages"),
    "kloset.v1.IngestService": ("Submit", "GetJob", "GetJobs", "GetQueueStats", "ListDeadLetters"),
}
# Within the call's deadline, which always bounds the whole: 0.2 s, then up to 0.4 and 0.8 s (gRPC jitters each).
RETRY_POLICY = {
    "maxAttempts": 4,
    "initialBackoff": "0.2s",
    "maxBackoff": "5s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}


def service_config() -> str:
    """The gRPC service config of every kloset channel (README, *Retries*: other kloset.v1 clients can use it)."""
    names = [{"service": service, "method": method} for service, methods in RETRIED_CALLS.items() for method in methods]
    method_config = [{"name": names, "retryPolicy": RETRY_POLICY}]
    return json.dumps({"loadBalancingConfig": [{"round_robin": {}}], "methodConfig": method_config}, indent=2)


def open_channel(settings: Settings, address: str) -> grpc.Channel:
    """A channel to a kloset role at `address` that sends the API key and the current request's id and deadline,
    and retries the calls in RETRIED_CALLS on UNAVAILABLE (gRPC's retryPolicy, not a loop of ours).

    Its service config's round_robin spreads calls over every address the name resolves to (several attribute
    replicas behind one DNS name); with one address it is the same as the default."""
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", service_config()),
    ]
    credentials = channel_credentials(settings)
    channel = (
        grpc.secure_channel(address, credentials, options) if credentials else grpc.insecure_channel(address, options)
    )
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    return grpc.intercept_channel(channel, OutgoingCallInterceptor(api_key))


_CALL_FIELDS = ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")


class _CallDetails(collections.namedtuple("_CallDetails", _CALL_FIELDS), grpc.ClientCallDetails):
    pass


class OutgoingCallInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds `authorization: Bearer <key>` and x-request-id to every call, and cuts its timeout to what is left of
    the request being served (a caller's deadline always wins over a role's own timeout)."""

    def __init__(self, api_key: str | None) -> None:
        self._api_key = api_key

    def _details(self, details: grpc.ClientCallDetails) -> _CallDetails:
        metadata = list(details.metadata or ())
        if self._api_key:
            metadata.append(("authorization", f"Bearer {self._api_key}"))
        if (request_id := request_context.request_id()) is not None:
            metadata.append((REQUEST_ID_HEADER, request_id))
        timeout = details.timeout
        if (left := request_context.remaining_s()) is not None:
            if left <= 0:
                raise DeadlineExceeded(f"the deadline passed before calling {details.method}")
            timeout = left if timeout is None else min(timeout, left)
        return _CallDetails(details.method, timeout, metadata, details.credentials, details.wait_for_ready,
                            details.compression)  # fmt: skip

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details), request_iterator)
