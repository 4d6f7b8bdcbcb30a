"""`kloset reindex` after a model change, against every role running on real ports (Qdrant Edge, a real
redis-server): the catalog moves to the new model version while searches keep being answered."""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest

from kloset.core.config import Role
from kloset.v1 import search_pb2, search_pb2_grpc
from tests.conftest import client_env, role_settings
from tests.core.index.conftest import second_model_dir  # noqa: F401 - the fixture
from tests.waiting import wait_until

KLOSET = str(Path(sys.executable).parent / "kloset")


def run(env, *args, check_exit: int | None = 0) -> subprocess.CompletedProcess:
    result = subprocess.run([KLOSET, *map(str, args)], env=env, capture_output=True, text=True, timeout=300)
    if check_exit is not None:
        assert result.returncode == check_exit, result.stderr
    return result


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory, tiny_model_dir, second_model_dir, tiny_segmenter_dir, sample_catalog):  # noqa: F811
    """The sample catalog indexed by one model, then every role restarted with another (the model change)."""
    from kloset.program import Program

    data = tmp_path_factory.mktemp("catalog")
    old = Program(role_settings(data, tiny_model_dir, tiny_segmenter_dir), frozenset(Role))
    old.start()
    try:
        run(client_env(old), "ingest", sample_catalog, "--wait", "--json")
        old_versions = json.loads(run(client_env(old), "stats", "--json").stdout)["model_versions"]
    finally:
        old.stop()
    program = Program(role_settings(data, second_model_dir, tiny_segmenter_dir), frozenset(Role))
    program.start()
    yield program, old_versions, sample_catalog
    program.stop()


def search_stub(program) -> search_pb2_grpc.SearchServiceStub:
    [server] = [s for s in program.servers if s.name == Role.SEARCH.value]
    return search_pb2_grpc.SearchServiceStub(grpc.insecure_channel(f"127.0.0.1:{server.port}"))


def test_a_second_reindex_is_refused_and_a_cancelled_one_leaves_the_old_catalog_live(upgraded):
    program, old_versions, _ = upgraded
    stub = search_stub(program)
    first = stub.Reindex(search_pb2.ReindexRequest())
    assert next(first).HasField("progress")
    with pytest.raises(grpc.RpcError) as refused:
        list(stub.Reindex(search_pb2.ReindexRequest(), timeout=30))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "already running" in refused.value.details()
    first.cancel()
    stats = stub.GetIndexStats(search_pb2.GetIndexStatsRequest(), timeout=30)
    assert {v.model_version: v.garments for v in stats.model_versions} == old_versions


def test_kloset_reindex_sends_max_failures_only_when_asked():
    """Issue 17 (8): the command read an argument its parser never defined, so the default always applied."""
    from kloset.cli.catalog import reindex_request
    from kloset.cli.main import build_parser
    from kloset.client.stubs import CommandError

    parse = build_parser().parse_args
    assert reindex_request(parse(["reindex", "--max-failures", "3"])).max_failures == 3
    assert reindex_request(parse(["reindex", "--max-failures", "0"])).HasField("max_failures")
    assert not reindex_request(parse(["reindex"])).HasField("max_failures")
    with pytest.raises(CommandError, match="--max-failures must be 0 or more"):
        reindex_request(parse(["reindex", "--max-failures", "-1"]))


def test_kloset_reindex_switches_the_model_version_while_every_search_answers(upgraded):
    program, old_versions, sample_catalog = upgraded
    env = client_env(program)
    [(old_version, garments)] = old_versions.items()
    assert garments == 54
    stub = search_stub(program)
    photo = (sample_catalog / "images" / "0003.jpg").read_bytes()
    stop, answered, errors = threading.Event(), [], []

    def keep_searching():
        while not stop.is_set():
            try:
                by_item = stub.SearchByItem(search_pb2.SearchByItemRequest(item_id="0003/bottom", top_k=3), timeout=30)
                by_image = stub.SearchByImage(search_pb2.SearchByImageRequest(image=photo, top_k=3), timeout=30)
                assert by_item.garments[0].results and by_image.garments[0].results
                answered.append(time.monotonic())
            except (grpc.RpcError, AssertionError, IndexError) as exc:
                errors.append(exc)

    searcher = threading.Thread(target=keep_searching)
    searcher.start()
    try:
        started = time.monotonic()
        tries: list = []

        def reindexed():  # the cancelled reindex of the test before may still be winding down
            tries[:] = [run(env, "reindex", "--json", check_exit=None)]
            return tries[0] if "FAILED_PRECONDITION" not in tries[0].stderr else None

        result = wait_until(reindexed, 60, what="a reindex that is not refused as one already running",
                            interval_s=0.25, detail=lambda: tries[0].stderr[-500:] if tries else "")  # fmt: skip
        assert result.returncode == 0, result.stderr
        during = [t for t in answered if started <= t <= time.monotonic()]
    finally:
        stop.set()
        searcher.join(60)
    summary = json.loads(result.stdout)
    assert not errors and during  # searches answered while the reindex ran, and none failed
    new_version = summary["model_version"]
    assert new_version != old_version
    assert (summary["re_embedded"], summary["failed"]) == (54, 0) and summary["model_versions"] == {new_version: 54}
    stats = json.loads(run(env, "stats", "--json").stdout)
    assert stats == {"indexed": 54, "queued": 0, "pending": 0, "dead_lettered": 0, "model_versions": {new_version: 54}}
    assert f"model_version {new_version}  54" in run(env, "stats").stdout
    text = run(env, "reindex", "--quiet").stdout  # again: everything already at the new version is copied
    assert f"with {new_version}" in text and "0 failed" in text
