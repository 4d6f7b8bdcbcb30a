"""`kloset ingest --wait` on a 200-photo folder against every role on real ports: the status calls it makes are
counted at the server, and the access log does not write a line per call."""

import collections
import contextlib
import json
import logging
import threading
from dataclasses import dataclass, field

import grpc
import pytest
from kloset.services.interceptors import AroundInterceptor

from kloset.core.config import Role
from kloset.program import Program
from tests.cli.test_cli import run
from tests.conftest import client_env, role_settings

PHOTOS = 200


@dataclass
class CountingProgram(Program):
    """The real Program with one more interceptor innermost: it counts the calls each method receives."""

    calls: collections.Counter = field(default_factory=collections.Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _interceptors(self) -> list[grpc.ServerInterceptor]:
        return [*super()._interceptors(), AroundInterceptor(self._count)]

    def _count(self, method: str, context: grpc.ServicerContext):
        with self._lock:
            self.calls[method.rsplit("/", 1)[-1]] += 1
        return contextlib.nullcontext()


@pytest.fixture(scope="module")
def counted(tmp_path_factory, tiny_model_dir, tiny_segmenter_dir):
    settings = role_settings(tmp_path_factory.mktemp("kloset"), tiny_model_dir, tiny_segmenter_dir)
    program = CountingProgram(settings, frozenset(Role))
    program.start()
    yield program
    program.stop()


@pytest.fixture(scope="module")
def big_catalog(tmp_path_factory):
    from kloset.core.garments.sample import write_sample_catalog

    root = tmp_path_factory.mktemp("big")
    write_sample_catalog(root, n=PHOTOS, seed=7)
    return root


def test_ingest_wait_makes_a_bounded_number_of_status_calls_counted_at_the_server(counted, big_catalog, caplog):
    caplog.set_level(logging.INFO, logger="kloset.services.access_log")
    report = json.loads(run(client_env(counted), "ingest", big_catalog, "--wait", "--json").stdout)
    jobs = report["submitted"]
    assert jobs + report["skipped"] == PHOTOS and report["done"] == jobs and report["failed"] == 0
    assert report["garments"] >= jobs
    # Every status call the command counted reached the server, as GetJobs; none per job.
    assert counted.calls["GetJobs"] == report["status_calls"] >= 1
    assert counted.calls["GetJob"] == 0 and counted.calls["Submit"] == PHOTOS
    # Issue 18's target is fewer than 3 a job; polling GetJob made 22 a job at 661 photos.
    assert report["status_calls"] < 0.5 * jobs, report["status_calls"]
    # Sampled access log (the default): 1 line in 100 successful Submits, not 200 lines.
    submits = [r for r in caplog.records if "IngestService/Submit " in r.getMessage()]
    assert 1 <= len(submits) <= 2 + sum(" OK " not in r.getMessage() for r in submits), caplog.text[-2000:]
