"""API keys: with KLOSET_API_KEYS (or _FILE) set, every kloset service wants `authorization: Bearer <key>`.

grpc.health.v1 and reflection stay open, so probes and grpcurl's service listing work without a key. A key is
compared in constant time against every accepted key, and never logged or echoed.
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


def is_open(method: str) -> bool:
    """Whether a method (/package.Service/Method) needs no key."""
    return method.lstrip("/").split("/", 1)[0] in OPEN_SERVICES


class ApiKeyInterceptor(grpc.ServerInterceptor):
    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("ApiKeyInterceptor needs at least one key")
        self._keys = [key.encode() for key in keys]

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or is_open(method):
            return handler
        problem = self._problem(dict(handler_call_details.invocation_metadata or ()).get("authorization"))
        if problem is None:
            return handler
        return refusing_handler(handler, method, grpc.StatusCode.UNAUTHENTICATED, problem)

    def _problem(self, authorization: str | None) -> str | None:
        """Why a call's authorization metadata is refused (a message without the key), or None if accepted."""
        if authorization is None:
            return "this kloset service needs an API key: send the metadata 'authorization: Bearer <key>'"
        if not authorization.lower().startswith(_SCHEME):
            return "the authorization metadata must be 'Bearer <key>'"
        offered = authorization[len(_SCHEME) :].strip().encode()
        # Every key is compared, whatever matched, so the time taken says nothing about which one is close.
        matches = [hmac.compare_digest(offered, key) for key in self._keys]
        return None if any(matches) else "the API key is not valid"
