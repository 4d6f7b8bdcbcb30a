"""tests/waiting.py: wait_until returns what the condition found, or fails saying what it waited for."""

import itertools
import time

import pytest

from tests.waiting import wait_until


def test_returns_the_first_truthy_value_the_condition_gives():
    answers = iter([None, 0, [], "ready", "later"])
    assert wait_until(lambda: next(answers), what="an answer", interval_s=0) == "ready"
    assert next(answers) == "later"  # asked no more once it held


def test_on_timeout_it_fails_naming_what_it_waited_for_and_the_state_then():
    calls = itertools.count()
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"^timed out waiting for the job to finish within 0.1 s: state=3$"):
        wait_until(lambda: next(calls) < 0, 0.1, what="the job to finish", interval_s=5, detail=lambda: "state=3")
    assert 0.1 <= time.monotonic() - started < 1  # the last pause is cut to the deadline, not a whole interval
    assert next(calls) == 2  # asked at the start and once more at the deadline


def test_an_exception_in_the_condition_propagates_at_once():
    def broken():
        raise ConnectionError("the server exited")

    started = time.monotonic()
    with pytest.raises(ConnectionError, match="the server exited"):
        wait_until(broken, 10, what="never reached")
    assert time.monotonic() - started < 1
