"""What every server interceptor needs: running a method's behaviour inside a context of its own.

grpc's sync server calls an interceptor before it knows the method's outcome, so an interceptor that must see
the call as it runs (request id, deadline, metrics) wraps the handler's behaviour instead. A streaming response is
a generator that grpc drains later, so its wrapper stays open until the stream ends.
"""

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import grpc
from kloset.services.access_log import AccessLogger

from kloset.core import request_context

# (the method's full name, the call's context) -> a context manager open while the method runs
Around = Callable[[str, grpc.ServicerContext], AbstractContextManager]

log = logging.getLogger(__name__)

_KINDS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
REQUEST_ID_HEADER = "x-request-id"
_NO_DEADLINE_S = 1e9  # grpc reports a call without a deadline as ~292 years remaining
_DEFAULT_ACCESS_LOG = AccessLogger()


def _kind(handler: grpc.RpcMethodHandler) -> str:
    """Which of the handler's four behaviour slots is filled (its streaming kind)."""
    return next(k for k in _KINDS if getattr(handler, k) is not None)


def wrap_handler(handler: grpc.RpcMethodHandler | None, method: str, around: Around) -> grpc.RpcMethodHandler | None:
    """The handler with each behaviour run inside around(method, context); None (unknown method) stays None."""
    if handler is None:
        return None
    kind = _kind(handler)
    behaviour = getattr(handler, kind)
    if handler.response_streaming:

        def streaming(request, context):
            with around(method, context):
                yield from behaviour(request, context)

        return handler._replace(**{kind: streaming})

    def unary(request, context):
        with around(method, context):
            return behaviour(request, context)

    return handler._replace(**{kind: unary})


def refusing_handler(
    handler: grpc.RpcMethodHandler, method: str, code: grpc.StatusCode, details: str
) -> grpc.RpcMethodHandler:
    """A handler of the same streaming kind as `handler` that ends every call with code and details, logging why
    (from inside the call, so the line carries its request id)."""
    kind = _kind(handler)

    def refuse(request, context):
        log.info("refused %s: %s", method, details)
        context.abort(code, details)

    return handler._replace(**{kind: refuse})


class AroundInterceptor(grpc.ServerInterceptor):
    """Runs each known method inside around(method, context)."""

    def __init__(self, around: Around) -> None:
        self._around = around

    def intercept_service(self, continuation, handler_call_details):
        return wrap_handler(continuation(handler_call_details), handler_call_details.method, self._around)


@contextmanager
def request_scope(method: str, context: grpc.ServicerContext, access_log: AccessLogger | None = None) -> Iterator[None]:
    """The call's x-request-id (made up when absent or unusable) and deadline, for the core and every log line;
    the id goes back to the caller in the initial metadata, so a client can quote it. access_log (default: the
    default KLOSET_ACCESS_LOG) decides which finished calls get a line."""
    offered = next((v for k, v in context.invocation_metadata() if k == REQUEST_ID_HEADER), None)
    request = request_context.usable_request_id(offered if isinstance(offered, str) else None)
    context.send_initial_metadata(((REQUEST_ID_HEADER, request),))
    remaining = context.time_remaining()
    started, failed = time.perf_counter(), True
    with request_context.bound(request, remaining if remaining is not None and remaining < _NO_DEADLINE_S else None):
        try:
            yield
            failed = False
        finally:
            # Inside the bound request context, so the line carries the call's request id.
            (access_log or _DEFAULT_ACCESS_LOG).record(
                method, status_of(context, failed), time.perf_counter() - started
            )


def status_of(context: grpc.ServicerContext, failed: bool) -> grpc.StatusCode:
    """The status grpc sends for a call that just ended: the code set on the context (context.abort sets it),
    else CANCELLED or DEADLINE_EXCEEDED when the caller is gone, else UNKNOWN after an exception, else OK."""
    code = context.code()
    if code is not None:
        return code
    if not context.is_active():
        return grpc.StatusCode.DEADLINE_EXCEEDED if context.time_remaining() <= 0 else grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK
