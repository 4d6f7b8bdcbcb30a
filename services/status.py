"""The one place where core errors become gRPC status codes (and back, for clients of other roles)."""

import functools
import logging
from collections.abc import Callable
from typing import TypeVar

import grpc

from kloset.core.errors import (
    DeadlineExceeded,
    InvalidInput,
    KlosetError,
    ModelError,
    NotFound,
    Overloaded,
    Unavailable,
)

log = logging.getLogger(__name__)

_CODES: tuple[tuple[type[KlosetError], grpc.StatusCode], ...] = (
    (InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (Overloaded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
    (ModelError, grpc.StatusCode.FAILED_PRECONDITION),
    (DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
)

F = TypeVar("F", bound=Callable)

# The details travel in the trailers, which gRPC limits to about 8 KB by default: a longer message would reach the
# client as RESOURCE_EXHAUSTED "Stream removed" instead of the reason. Messages quote caller input only in part
# (errors.quoted); this cap is the last line of defence. grpc-message is percent-encoded UTF-8 (a Korean character
# takes 9 bytes on the wire), so the encoded size is capped too.
MAX_DETAILS_CHARS = 1000
_MAX_DETAILS_WIRE_BYTES = 4000


def status_code(error: KlosetError) -> grpc.StatusCode:
    return next((code for kind, code in _CODES if isinstance(error, kind)), grpc.StatusCode.INTERNAL)


def _abort(method: Callable, context: grpc.ServicerContext, error: Exception):
    """End the call with the error's status; anything not raised on purpose is INTERNAL and logged."""
    if isinstance(error, KlosetError):
        context.abort(status_code(error), short_details(str(error)))
    log.exception("%s failed", method.__qualname__, exc_info=error)
    context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method.__name__}; see the server log")


def short_details(message: str) -> str:
    """The message, cut (with a note saying so) to at most MAX_DETAILS_CHARS characters that fit the trailers."""
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")  # a lone surrogate cannot be sent
    if len(message) <= MAX_DETAILS_CHARS and _wire_bytes(message) <= _MAX_DETAILS_WIRE_BYTES:
        return message
    note = f"… ({len(message)} characters, cut)"
    budget, end = _MAX_DETAILS_WIRE_BYTES - _wire_bytes(note), 0
    for char in message[: MAX_DETAILS_CHARS - len(note)]:
        budget -= _wire_bytes(char)
        if budget < 0:
            break
        end += 1
    return message[:end] + note


def _wire_bytes(text: str) -> int:
    """Length of text percent-encoded as grpc-message is: printable ASCII but % as is, every other byte as %XX."""
    return sum(1 if 0x20 <= b <= 0x7E and b != 0x25 else 3 for b in text.encode("utf-8"))


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
