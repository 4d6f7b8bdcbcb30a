"""The request a piece of work belongs to: its id, for logs that follow it across roles and into worker jobs,
and its deadline, so work whose caller has stopped waiting stops too.

Transport sets both (a gRPC interceptor from metadata and the call's deadline, a worker from the job); the core
reads them here, never from gRPC. Context variables follow the work within a thread; a thread pool that works for
a request runs its tasks in a copy of the submitter's context (contextvars.copy_context).
"""

import logging
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from kloset.core.errors import DeadlineExceeded

_request_id: ContextVar[str | None] = ContextVar("kloset_request_id", default=None)
_deadline: ContextVar[float | None] = ContextVar("kloset_deadline", default=None)  # time.monotonic()

# What a caller's x-request-id may be: short, printable, no spaces; anything else is replaced by one made here,
# so a log line can neither be forged nor bloated through it.
_VALID_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")


def new_request_id() -> str:
    return uuid.uuid4().hex


def usable_request_id(value: str | None) -> str:
    """The caller's id when it is a sane one, else a new one."""
    return value if value and _VALID_ID.fullmatch(value) else new_request_id()


def request_id() -> str | None:
    """The id of the request this thread works for, if any."""
    return _request_id.get()


def remaining_s() -> float | None:
    """Seconds left before the request's deadline (negative once passed); None when it has none."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


def deadline() -> float | None:
    """The request's deadline on the time.monotonic() clock, if any."""
    return _deadline.get()


def check_deadline(step: str) -> None:
    """Raise DeadlineExceeded before `step` when the caller's deadline has passed."""
    left = remaining_s()
    if left is not None and left <= 0:
        raise DeadlineExceeded(f"the deadline passed before {step} ({-left * 1000:.0f} ms ago)")


@contextmanager
def bound(request: str | None, timeout_s: float | None = None) -> Iterator[None]:
    """Work inside belongs to `request` and must end within timeout_s (None: no deadline of its own)."""
    id_token = _request_id.set(request)
    deadline_token = _deadline.set(None if timeout_s is None else time.monotonic() + timeout_s)
    try:
        yield
    finally:
        _deadline.reset(deadline_token)
        _request_id.reset(id_token)


class RequestIdFilter(logging.Filter):
    """Adds request_id to every record (\"-\" outside a request), for text and JSON log formats alike."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get() or "-"
        return True
