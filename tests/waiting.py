"""Waiting in tests for something to become true, with a deadline and a message that says what was awaited.

A fixed `time.sleep()` guesses how long something takes: too short and the test is flaky on a loaded machine,
too long and every run pays for it, and when it fails it does not say what it was waiting for. `wait_until`
polls the condition itself, returns as soon as it holds, and on timeout fails with `what` in the message.
"""

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T],
    timeout_s: float = 10.0,
    *,
    what: str,
    interval_s: float = 0.02,
    detail: Callable[[], object] | None = None,
) -> T:
    """Poll `condition` until it returns something truthy, and return that.

    Raises AssertionError naming `what` (and `detail()`, the state at that moment, when given) once `timeout_s`
    have passed; the condition is asked once more at the deadline, so a slow poll never times out early.
    An exception inside `condition` propagates at once: it is a failure (a process that exited, a wrong answer),
    not "not yet". A condition that expects a transient error (a server still starting) catches it and
    returns a falsy value.
    """
    __tracebackhide__ = True
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            message = f"timed out waiting for {what} within {timeout_s} s"
            raise AssertionError(message if detail is None else f"{message}: {detail()}")
        time.sleep(min(interval_s, left))
