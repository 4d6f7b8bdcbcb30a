"""API keys: with KLOSET_API_KEYS (or _FILE) set, every kloset service wants `authorization: Bearer <key>`.

grpc.health.v1 and reflection stay open, so probes and grpcurl's service listing work without a key. A key is
compared in constant time against every accepted key, and never logged or echoed. Each key carries scopes
(`read`, `write`, `admin`; a plain key has all three) and each method needs one (METHOD_SCOPES): a key without
it is PERMISSION_DENIED, with the scope named.
"""

import hmac
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection
from kloset.services.interceptors import refusing_handler

OPEN_SERVICES = (
    health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
    reflection.SERVICE_NAME,
    "grpc.reflection.v1.ServerReflection",  # newer grpcurl asks v1 first
)
_SCHEME = "bearer "

# The scope each kloset.v1 method needs; a method not listed (added later and forgotten here) needs admin.
METHOD_SCOPES = {
    "kloset.v1.AttributeService/Classify": "read",
    "kloset.v1.SearchService/SearchByImage": "read",
    "kloset.v1.SearchService/SearchByItem": "read",
    "kloset.v1.SearchService/CompleteLook": "read",
    "kloset.v1.SearchService/GetGarmentImages": "read",
    "kloset.v1.SearchService/GetIndexStats": "read",
    "kloset.v1.SearchService/Reindex": "admin",
    "kloset.v1.IngestService/Submit": "write",
    "kloset.v1.IngestService/SubmitBatch": "write",
    "kloset.v1.IngestService/GetJob": "read",
    "kloset.v1.IngestService/GetJobs": "read",
    "kloset.v1.IngestService/WatchJob": "read",
    "kloset.v1.IngestService/GetQueueStats": "read",
    "kloset.v1.IngestService/ListDeadLetters": "admin",
    "kloset.v1.IngestService/RetryDeadLetters": "admin",
    "kloset.v1.IngestService/PurgeDeadLetters": "admin",
}


def needed_scope(method: str) -> str:
    """The scope a method (/package.Service/Method) needs."""
    return METHOD_SCOPES.get(method.lstrip("/"), "admin")


def is_open(method: str) -> bool:
    """Whether a method (/package.Service/Method) needs no key."""
    return method.lstrip("/").split("/", 1)[0] in OPEN_SERVICES


class ApiKeyInterceptor(grpc.ServerInterceptor):
    def __init__(self, keys: Sequence[tuple[str, frozenset[str]]]) -> None:
        """keys: (key, scopes) pairs, as Settings.scoped_api_keys gives them."""
        if not keys:
            raise ValueError("ApiKeyInterceptor needs at least one key")
        self._keys = [(key.encode(), scopes) for key, scopes in keys]

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or is_open(method):
            return handler
        scopes, problem = self._scopes(dict(handler_call_details.invocation_metadata or ()).get("authorization"))
        if problem is not None:
            return refusing_handler(handler, method, grpc.StatusCode.UNAUTHENTICATED, problem)
        scope = needed_scope(method)
        if scope not in scopes:
            name = method.rsplit("/", 1)[-1]
            return refusing_handler(handler, method, grpc.StatusCode.PERMISSION_DENIED,
                                    f"this API key lacks the {scope!r} scope that {name} needs")  # fmt: skip
        return handler

    def _scopes(self, authorization: str | None) -> tuple[frozenset[str], str | None]:
        """The scopes of the key a call sent, or why its authorization metadata is refused (never the key)."""
        if authorization is None:
            return frozenset(), "this kloset service needs an API key: send the metadata 'authorization: Bearer <key>'"
        if not authorization.lower().startswith(_SCHEME):
            return frozenset(), "the authorization metadata must be 'Bearer <key>'"
        offered = authorization[len(_SCHEME) :].strip().encode()
        # Every key is compared, whatever matched, so the time taken says nothing about which one is close.
        granted: frozenset[str] = frozenset()
        matched = False
        for key, scopes in self._keys:
            if hmac.compare_digest(offered, key):
                granted, matched = granted | scopes, True
        return (granted, None) if matched else (frozenset(), "the API key is not valid")
