"""The one place where core errors become gRPC status codes (and back, for clients of other roles)."""

import functools
import logging
from collections.abc import Callable
from typing import TypeVar

import grpc

from kloset.core.errors import InvalidInput, KlosetError, ModelError, NotFound, Overloaded, Unavailable

log = logging.getLogger(__name__)

_CODES: tuple[tuple[type[KlosetError], grpc.StatusCode], ...] = (
    (InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (Overloaded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
    (ModelError, grpc.StatusCode.FAILED_PRECONDITION),
)

F = TypeVar("F", bound=Callable)


def status_code(error: KlosetError) -> grpc.StatusCode:
    return next((code for kind, code in _CODES if isinstance(error, kind)), grpc.StatusCode.INTERNAL)


def _abort(method: Callable, context: grpc.ServicerContext, error: Exception):
    """End the call with the error's status; anything not raised on purpose is INTERNAL and logged."""
    if isinstance(error, KlosetError):
        context.abort(status_code(error), str(error))
    log.exception("%s failed", method.__qualname__, exc_info=error)
    context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method.__name__}; see the server log")


def grpc_errors(method: F) -> F:
    """Turn core errors raised by a servicer method into the matching status; anything else is INTERNAL."""

    @functools.wraps(method)
    def wrapper(self, request, context: grpc.ServicerContext):
        try:
            return method(self, request, context)
        except Exception as exc:
            _abort(method, context, exc)

    return wrapper  # type: ignore[return-value]


def grpc_stream_errors(method: F) -> F:
    """grpc_errors for server-streaming methods, whose errors surface while the stream is consumed."""

    @functools.wraps(method)
    def wrapper(self, request, context: grpc.ServicerContext):
        try:
            yield from method(self, request, context)
        except Exception as exc:
            _abort(method, context, exc)

    return wrapper  # type: ignore[return-value]


def core_error(error: grpc.RpcError) -> KlosetError:
    """The core error for a status received from another kloset role."""
    code, details = error.code(), error.details() or ""
    kind = next((k for k, c in _CODES if c == code), Unavailable)
    return kind(details if kind is not Unavailable else f"attribute service: {code.name}: {details}")
