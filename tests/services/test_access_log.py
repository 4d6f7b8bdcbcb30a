"""KLOSET_ACCESS_LOG: failures and slow calls always get a line; successful calls all, 1 in N per method, or none."""

import logging

import grpc
import pytest
from kloset.services.access_log import AccessLogger

from kloset.core.config import AccessLog, load_settings

OK, NOT_FOUND = grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND
SUBMIT, GET_JOBS = "/kloset.v1.IngestService/Submit", "/kloset.v1.IngestService/GetJobs"


@pytest.fixture
def lines(caplog):
    caplog.set_level(logging.DEBUG, logger="kloset.services.access_log")
    return lambda: [r.getMessage() for r in caplog.records if r.name == "kloset.services.access_log"]


def test_all_logs_every_call(lines):
    logger = AccessLogger(AccessLog.ALL, sample=100, slow_ms=1000)
    for _ in range(5):
        logger.record(SUBMIT, OK, 0.002)
    assert lines() == [f"{SUBMIT} OK 2.0 ms"] * 5


def test_sampled_logs_the_first_and_then_one_in_n_per_method_and_every_failure(lines):
    logger = AccessLogger(AccessLog.SAMPLED, sample=10, slow_ms=1000)
    for _ in range(25):
        logger.record(SUBMIT, OK, 0.001)
    logger.record(GET_JOBS, OK, 0.001)  # another method is sampled on its own: its first call shows
    logger.record(SUBMIT, NOT_FOUND, 0.001)
    logged = lines()
    assert logged.count(f"{SUBMIT} OK 1.0 ms (1 in 10)") == 3  # calls 1, 11 and 21
    assert f"{GET_JOBS} OK 1.0 ms (1 in 10)" in logged
    assert logged[-1] == f"{SUBMIT} NOT_FOUND 1.0 ms" and len(logged) == 5


def test_failures_logs_failures_and_slow_calls_only(lines):
    logger = AccessLogger(AccessLog.FAILURES, sample=1, slow_ms=50)
    logger.record(SUBMIT, OK, 0.010)
    logger.record(SUBMIT, OK, 0.060)
    logger.record(SUBMIT, grpc.StatusCode.RESOURCE_EXHAUSTED, 0.001)
    assert lines() == [f"{SUBMIT} OK 60.0 ms (slow)", f"{SUBMIT} RESOURCE_EXHAUSTED 1.0 ms"]


def test_health_probes_stay_at_debug(caplog):
    caplog.set_level(logging.DEBUG, logger="kloset.services.access_log")
    AccessLogger(AccessLog.ALL).record("/grpc.health.v1.Health/Check", OK, 0.001)
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]


def test_settings_choose_the_mode_the_sample_and_the_slow_threshold(monkeypatch):
    monkeypatch.setenv("KLOSET_ACCESS_LOG", "failures")
    monkeypatch.setenv("KLOSET_ACCESS_LOG_SLOW_MS", "250")
    settings = load_settings()
    assert settings.access_log is AccessLog.FAILURES and settings.access_log_slow_ms == 250
    assert load_settings(access_log="all").access_log is AccessLog.ALL
    monkeypatch.delenv("KLOSET_ACCESS_LOG")
    default = load_settings()
    assert default.access_log is AccessLog.SAMPLED and default.access_log_sample == 100
