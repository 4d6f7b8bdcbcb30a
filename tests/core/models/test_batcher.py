"""The micro-batcher: concurrent callers share passes, each gets its own results or its own error."""

import threading

import pytest

from kloset.core.models.batcher import MicroBatcher
from tests.waiting import wait_until


class Doubler:
    """Doubles numbers; a negative one breaks the pass. Records each pass's items; can hold a pass open."""

    def __init__(self) -> None:
        self.passes: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, items: list[int]) -> list[int]:
        self.passes.append(list(items))
        self.entered.set()
        self.gate.wait(10)
        if any(i < 0 for i in items):
            raise ValueError(f"negative input among {items}")
        return [2 * i for i in items]


def call_concurrently(batcher, requests):
    """Run each request in its own thread while a first pass is held open, so they queue up together."""
    outcomes = [None] * len(requests)

    def call(i):
        try:
            outcomes[i] = batcher(requests[i])
        except ValueError as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    return threads, outcomes


def test_a_lone_call_runs_at_once_even_with_a_long_wait():
    run = Doubler()
    batcher = MicroBatcher(run, max_items=16, max_wait_s=30.0)  # would hang the test if a lone call waited
    assert batcher([1, 2, 3]) == [2, 4, 6]
    assert batcher([4]) == [8]
    assert run.passes == [[1, 2, 3], [4]]


def test_concurrent_callers_share_a_pass_and_get_their_own_results():
    run = Doubler()
    batcher = MicroBatcher(run, max_items=16, max_wait_s=0.0)
    run.gate.clear()
    first, first_out = call_concurrently(batcher, [[100]])
    run.entered.wait(10)  # the first pass is running; the next callers queue behind it
    threads, outcomes = call_concurrently(batcher, [[1], [2, 3], [4, 5, 6]])
    wait_until(lambda: sum(len(r.items) for r in batcher._queued) >= 6, what="6 items to queue behind the pass",
               interval_s=0.01)  # fmt: skip
    run.gate.set()
    for thread in first + threads:
        thread.join(10)
    assert first_out == [[200]]
    assert outcomes == [[2], [4, 6], [8, 10, 12]]
    assert len(run.passes) == 2 and sorted(run.passes[1]) == [1, 2, 3, 4, 5, 6]


def test_a_pass_takes_whole_requests_up_to_max_items():
    run = Doubler()
    batcher = MicroBatcher(run, max_items=3, max_wait_s=0.0)
    assert batcher.run_many([[1, 2], [3, 4], [5]]) == [[2, 4], [6, 8], [10]]
    assert run.passes == [[1, 2], [3, 4, 5]]


def test_an_error_reaches_only_the_callers_whose_items_broke_the_pass():
    run = Doubler()
    batcher = MicroBatcher(run, max_items=16, max_wait_s=0.0)
    outcomes = batcher.run_many([[1], [-1, 2], [3]])
    assert outcomes[0] == [2] and outcomes[2] == [6]
    assert isinstance(outcomes[1], ValueError) and "negative" in str(outcomes[1])
    with pytest.raises(ValueError, match="negative"):
        batcher([-5])
    assert batcher([7]) == [14]  # the batcher is still usable


def test_concurrent_callers_with_one_bad_request():
    run = Doubler()
    batcher = MicroBatcher(run, max_items=16, max_wait_s=0.0)
    run.gate.clear()
    first, _ = call_concurrently(batcher, [[100]])
    run.entered.wait(10)
    threads, outcomes = call_concurrently(batcher, [[1], [-2], [3]])
    wait_until(lambda: sum(len(r.items) for r in batcher._queued) >= 3, what="3 items to queue behind the pass",
               interval_s=0.01)  # fmt: skip
    run.gate.set()
    for thread in first + threads:
        thread.join(10)
    assert outcomes[0] == [2] and outcomes[2] == [6] and isinstance(outcomes[1], ValueError)


def test_an_empty_request_needs_no_pass():
    run = Doubler()
    assert MicroBatcher(run, max_items=4, max_wait_s=0.0).run_many([[], [1]]) == [[], [2]]
    assert run.passes == [[1]]


def test_a_request_whose_deadline_passes_while_queued_gets_no_pass():
    from kloset.core import request_context
    from kloset.core.errors import DeadlineExceeded

    run = Doubler()
    batcher = MicroBatcher(run, max_items=16, max_wait_s=0.0)
    run.gate.clear()
    first, first_out = call_concurrently(batcher, [[100]])
    run.entered.wait(10)  # a pass holds the model; the next caller queues with a short deadline
    late: list = []

    def call_with_deadline():
        with request_context.bound("late", timeout_s=0.05):
            try:
                late.append(batcher([7]))
            except DeadlineExceeded as exc:
                late.append(exc)

    caller = threading.Thread(target=call_with_deadline)
    caller.start()
    wait_until(lambda: batcher._queued, what="the late request to queue", interval_s=0.01)
    threading.Event().wait(0.1)  # its deadline (0.05 s) passes while it waits: time passing is what is awaited
    run.gate.set()
    for thread in [*first, caller]:
        thread.join(10)
    assert first_out == [[200]]
    assert isinstance(late[0], DeadlineExceeded)
    assert run.passes == [[100]]  # no forward pass was spent on the expired request


def test_a_request_already_past_its_deadline_is_refused_at_once():
    from kloset.core import request_context
    from kloset.core.errors import DeadlineExceeded

    run = Doubler()
    batcher = MicroBatcher(run, max_items=16, max_wait_s=0.0)
    with request_context.bound("gone", timeout_s=0.0), pytest.raises(DeadlineExceeded, match="forward pass"):
        batcher([1])
    assert run.passes == []
