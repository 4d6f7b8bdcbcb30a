"""Micro-batching: requests from many threads share one forward pass, each caller gets its own slice back.

There is no batching thread: the first caller to find the model idle runs the pass for everything queued, so a
lone request runs at once. Requests that arrive while a pass runs wait for it and go together in the next one;
only under such concurrency does the next pass wait up to max_wait_s for more requests to fill it.
"""

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from kloset.core import request_context
from kloset.core.errors import DeadlineExceeded

T = TypeVar("T")
R = TypeVar("R")


@dataclass(eq=False)
class _Request(Generic[T, R]):
    items: list[T]
    results: list[R] | None = None
    error: BaseException | None = None
    done: bool = False
    deadline: float | None = None  # its caller's (time.monotonic()); once passed, the request leaves unserved

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline


class MicroBatcher(Generic[T, R]):
    """Runs `run(items) -> results` (one result per item, in order) over the items of several requests at once."""

    def __init__(self, run: Callable[[list[T]], list[R]], max_items: int, max_wait_s: float) -> None:
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must not be negative, got {max_wait_s}")
        self._run = run
        self.max_items = max_items
        self.max_wait_s = max_wait_s
        self._cond = threading.Condition()
        self._queued: list[_Request[T, R]] = []
        self._running = False
        self._concurrent = False  # the last pass served more than one request: worth waiting for company
        self.passes = 0  # forward passes run, for tests and benchmarks

    def __call__(self, items: Sequence[T]) -> list[R]:
        """The results for these items; raises what the pass over them raised."""
        [outcome] = self.run_many([items])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def run_many(self, requests: Sequence[Sequence[T]]) -> list[list[R] | BaseException]:
        """Several requests of one caller, batched with everyone's; each gets its results or its own error."""
        request_context.check_deadline("the forward pass")
        deadline = request_context.deadline()
        mine = [_Request[T, R](list(items), deadline=deadline) for items in requests]
        with self._cond:
            self._queued.extend(r for r in mine if r.items)
            self._cond.notify_all()  # a leader waiting to fill its pass
            for r in mine:
                if not r.items:
                    r.results, r.done = [], True
            while not all(r.done for r in mine):
                if self._running:
                    self._cond.wait()
                    continue
                self._running = True
                self._cond.release()
                try:
                    self._lead()
                finally:
                    self._cond.acquire()
                    self._running = False
                    self._cond.notify_all()
        return [r.error if r.error is not None else r.results for r in mine]

    def _lead(self) -> None:
        """One pass over what is queued (after waiting briefly for more, when callers are concurrent)."""
        if self._concurrent and self.max_wait_s > 0:
            deadline = time.monotonic() + self.max_wait_s
            with self._cond:
                while self._queued_items() < self.max_items and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
        with self._cond:
            batch = self._take()
        if not batch:  # every queued request had expired
            return
        self._concurrent = len(batch) > 1
        try:
            self._pass(batch)
        except BaseException as exc:  # interrupted: nobody may wait for requests that left the queue
            for request in batch:
                if not request.done:
                    request.error, request.done = exc, True
            raise
        self.passes += 1

    def _queued_items(self) -> int:
        return sum(len(r.items) for r in self._queued)

    def _take(self) -> list[_Request[T, R]]:
        """Whole requests in arrival order up to max_items (always at least one, unless every one has expired).

        A request whose caller's deadline passed while it queued is answered DeadlineExceeded instead: no pass
        is spent on an answer nobody waits for."""
        batch, count, now = [], 0, time.monotonic()
        while self._queued and (not batch or count + len(self._queued[0].items) <= self.max_items):
            request = self._queued.pop(0)
            if request.expired(now):
                request.error = DeadlineExceeded("the deadline passed while waiting for the forward pass")
                request.done = True
                continue
            batch.append(request)
            count += len(request.items)
        return batch

    def _pass(self, batch: list[_Request[T, R]]) -> None:
        try:
            results = self._run([item for r in batch for item in r.items])
            if len(results) != sum(len(r.items) for r in batch):
                raise RuntimeError(f"the batched function returned {len(results)} results for a different count")
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
                batch[0].done = True
                return
            for request in batch:  # find whose items broke the pass: only they get the error
                self._pass([request])
            return
        start = 0
        for request in batch:
            request.results = results[start : start + len(request.items)]
            request.done = True
            start += len(request.items)
