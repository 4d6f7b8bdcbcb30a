"""kloset.core.request_context: the id and deadline of the request a piece of work belongs to."""

import logging
import threading

import pytest

from kloset.core import request_context
from kloset.core.errors import DeadlineExceeded


def test_outside_a_request_there_is_no_id_and_no_deadline():
    assert request_context.request_id() is None
    assert request_context.remaining_s() is None
    request_context.check_deadline("anything")  # no deadline: never raises


def test_bound_sets_and_restores_id_and_deadline():
    with request_context.bound("outer", timeout_s=30):
        assert request_context.request_id() == "outer"
        assert 29 < request_context.remaining_s() <= 30
        with request_context.bound("inner"):
            assert request_context.request_id() == "inner"
            assert request_context.remaining_s() is None
        assert request_context.request_id() == "outer"
    assert request_context.request_id() is None


def test_check_deadline_raises_once_passed_and_names_the_step():
    with request_context.bound("r", timeout_s=0.0), pytest.raises(DeadlineExceeded, match="before searching"):
        request_context.check_deadline("searching")


def test_context_does_not_leak_into_other_threads():
    seen = []
    with request_context.bound("mine", timeout_s=10):
        thread = threading.Thread(target=lambda: seen.append(request_context.request_id()))
        thread.start()
        thread.join()
    assert seen == [None]


@pytest.mark.parametrize(
    ("offered", "kept"),
    [("abc-123", True), ("a" * 128, True), ("a" * 129, False), ("has space", False), ("x\nforged", False),
     ("", False), (None, False)],
)  # fmt: skip
def test_only_sane_request_ids_are_kept(offered, kept):
    usable = request_context.usable_request_id(offered)
    assert (usable == offered) is kept
    assert len(usable) <= 128


def test_log_records_carry_the_request_id():
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    handler.addFilter(request_context.RequestIdFilter())
    logger = logging.getLogger("test.request_context")
    logger.addHandler(handler)
    try:
        logger.warning("outside")
        with request_context.bound("req-7"):
            logger.warning("inside")
    finally:
        logger.removeHandler(handler)
    assert [r.request_id for r in records] == ["-", "req-7"]
