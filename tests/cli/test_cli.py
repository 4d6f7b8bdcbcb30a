"""The `kloset` console script as users run it, against roles running on real ports."""

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.waiting import wait_until

KLOSET = str(Path(sys.executable).parent / "kloset")


def run(env, *args, check_exit: int | None = 0) -> subprocess.CompletedProcess:
    result = subprocess.run([KLOSET, *map(str, args)], env=env, capture_output=True, text=True, timeout=300)
    if check_exit is not None:
        assert result.returncode == check_exit, result.stderr
    return result


@pytest.fixture(scope="module")
def ingested(kloset, sample_catalog):
    from tests.conftest import client_env

    env = client_env(kloset)
    report = json.loads(run(env, "ingest", sample_catalog, "--wait", "--json").stdout)
    return env, report


def test_ingest_folder_waits_and_reports_counts(ingested):
    report = dict(ingested[1])
    status_calls = report.pop("status_calls")
    assert 1 <= status_calls <= 10  # GetJobs sweeps over every job at once (one GetJob per job per sweep before)
    assert report == {
        "submitted": 27,
        "done": 27,
        "failed": 0,
        "skipped": 3,
        "duplicates": 0,
        "garments": 54,
        "unmatched": [],
        "failures": [],
        "failed_by_reason": {},
    }


def test_stats_and_health(ingested):
    env, _ = ingested
    stats = json.loads(run(env, "stats", "--json").stdout)
    versions = stats.pop("model_versions")
    assert stats == {"indexed": 54, "queued": 0, "pending": 0, "dead_lettered": 0}
    assert len(versions) == 1 and sum(versions.values()) == 54
    health = run(env, "health")
    assert health.stdout.count("SERVING") == 4


def test_every_job_of_one_ingest_run_carries_the_commands_request_id(kloset, ingested):
    from collections import Counter

    from kloset.core.ingest.embedded_redis import EmbeddedRedis
    from kloset.core.ingest.queue import connect

    redis = connect(EmbeddedRedis(kloset.settings.redis_dir).url)
    jobs = redis.keys(f"{kloset.settings.stream}:job:*")
    ids = Counter(redis.hget(job, "request_id") for job in jobs)
    [(run_id, count)] = ids.most_common(1)
    assert count >= 27 and re.fullmatch(r"[0-9a-f]{32}", run_id)  # the 27 photos `ingested` submitted


def test_a_failed_call_names_the_commands_request_id(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "KLOSET_SEARCH_ADDR": "127.0.0.1:9", "KLOSET_INGEST_ADDR": "127.0.0.1:9"}
    result = run(env, "stats", check_exit=1)
    assert re.search(r"\(request id [0-9a-f]{32}\)$", result.stderr.strip()), result.stderr


def test_search_by_item_json_contract(ingested):
    env, _ = ingested
    answer = json.loads(run(env, "search", "--item", "0003/bottom", "--top-k", "4", "--json").stdout)
    [garment] = answer["garments"]
    # The keys kloset search --json always had, and the ones added with the filter policies.
    assert {"group", "category", "color", "filter", "results"} <= set(garment)
    assert {"policy", "relaxed", "relaxation", "box", "top_categories", "top_colors"} <= set(garment)
    assert garment["group"] == "bottom" and garment["policy"] == "soft" and len(garment["results"]) == 4
    for hit in garment["results"]:
        assert {"item_id", "score", "group", "category", "color", "source"} <= set(hit)
        assert hit["group"] == "bottom" and hit["item_id"] != "0003/bottom"
    strict = json.loads(run(env, "search", "--item", "0003/bottom", "--policy", "strict", "--json").stdout)
    [garment] = strict["garments"]
    assert garment["policy"] == "strict"
    if not garment["relaxed"]:
        assert garment["filter"] == {"category": [garment["category"]], "color": [garment["color"]]}
    for hit in garment["results"]:
        assert not garment["filter"]["category"] or hit["category"] in garment["filter"]["category"]
        assert not garment["filter"]["color"] or hit["color"] in garment["filter"]["color"]


def test_search_pages_and_outfit_with_a_contact_sheet(ingested, tmp_path):
    env, _ = ingested
    first = json.loads(run(env, "search", "--item", "0003/top", "--top-k", "6", "--json").stdout)["garments"][0]
    page = json.loads(
        run(env, "search", "--item", "0003/top", "--top-k", "3", "--offset", "3", "--json").stdout
    )["garments"][0]
    assert [h["item_id"] for h in page["results"]] == [h["item_id"] for h in first["results"][3:6]]
    sheet = tmp_path / "look.png"
    look = json.loads(run(env, "outfit", "--item", "0003/top", "--sheet", sheet, "--json").stdout)["garments"][0]
    assert look["group"] == "top" and look["results"] and all(h["support"] >= 1 for h in look["results"])
    assert {h["group"] for h in look["results"]} == {"bottom"}
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_search_and_classify_a_photo_with_its_label(ingested, sample_catalog):
    env, _ = ingested
    image, label = sample_catalog / "images" / "0005.jpg", sample_catalog / "labels" / "0005.json"
    answer = json.loads(run(env, "search", image, "--label", label, "--color", "black", "--json").stdout)
    assert [g["group"] for g in answer["garments"]] == ["top", "bottom"]
    assert all(h["color"] == "black" for g in answer["garments"] for h in g["results"])
    classified = json.loads(run(env, "classify", image, "--label", label, "--json").stdout)
    assert [g["group"] for g in classified["garments"]] == ["top", "bottom"]
    assert len(classified["garments"][0]["top_colors"]) == 3
    text = run(env, "search", image, "--box", "60,40,120,100").stdout
    assert text.startswith(("top:", "bottom:"))


def test_bulk_ingest_lists_each_rejected_item_and_exits_non_zero(kloset, sample_catalog, tmp_path):
    from tests.conftest import client_env

    folder = tmp_path / "catalog"
    shutil.copytree(sample_catalog, folder)
    for stem in ("0002", "0004"):
        (folder / "images" / f"{stem}.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (folder / "labels" / "0006.json").write_text('{"hello": "world"}')
    result = run(client_env(kloset), "ingest", folder, "--limit", "8", "--json", check_exit=1)
    report = json.loads(result.stdout)
    assert report["submitted"] + report["duplicates"] + report["failed"] + report["skipped"] == 8
    assert report["duplicates"] == 5  # the unbroken photos were ingested by the fixture already
    reasons = {f["item"]: f["reason"] for f in report["failures"]}
    assert set(reasons) == {"0002.jpg", "0004.jpg", "0006.jpg"}
    assert "corrupt" in reasons["0002.jpg"] or "not an image" in reasons["0002.jpg"]
    assert "not K-Fashion" in reasons["0006.jpg"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest", "/no/such/folder"], "does not exist"),
        (["search", "--item", "0001/top", "--category", "tuxedo"], "unknown category 'tuxedo'"),
        (["search"], "give an IMAGE"),
        (["search", "/no/such.jpg"], "cannot read"),
        (["search", "--item", "ghost/top"], "NOT_FOUND"),
    ],
)
def test_user_errors_are_one_clear_line_and_a_non_zero_exit(ingested, args, message):
    env, _ = ingested
    result = run(env, *args, check_exit=1)
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_photo_over_the_message_limit_is_one_clear_line_and_never_retried(ingested, tmp_path):
    env, _ = ingested
    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff\xd8" + bytes(2 * 1024 * 1024))
    small = {**env, "KLOSET_MAX_MESSAGE_BYTES": str(1024 * 1024)}
    result = run(small, "classify", big, check_exit=1)
    assert "KLOSET_MAX_MESSAGE_BYTES" in result.stderr and "larger than max" in result.stderr
    assert "Traceback" not in result.stderr
    started = time.monotonic()  # RESOURCE_EXHAUSTED for a full queue is retried; for this photo it never helps
    report = json.loads(run(small, "ingest", big, "--json", "--timeout", "60", check_exit=1).stdout)
    assert time.monotonic() - started < 30
    [failure] = report["failures"]
    assert failure["item"] == "big.jpg" and "KLOSET_MAX_MESSAGE_BYTES" in failure["reason"]


def test_health_fails_when_nothing_answers(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        **{f"KLOSET_{r}_ADDR": "127.0.0.1:9" for r in ("ATTRIBUTE", "SEARCH", "INGEST", "WORKER")},
    }
    result = run(env, "health", check_exit=1)
    assert "UNREACHABLE" in result.stdout


def test_sample_writes_a_k_fashion_folder(tmp_path):
    run({"PATH": "/usr/bin:/bin"}, "sample", tmp_path / "s", "--n", "5")
    assert len(list((tmp_path / "s" / "images").glob("*.jpg"))) == 5
    assert len(list((tmp_path / "s" / "labels").glob("*.json"))) == 5


def test_dlq_list_retry_and_purge(kloset, ingested):
    from kloset.core.ingest.jobs import JobSpec
    from kloset.core.ingest.queue import IngestQueue, connect

    env, _ = ingested
    settings = kloset.settings
    queue = IngestQueue(connect(f"unix://{settings.redis_dir.resolve() / 'redis.sock'}"), stream=settings.stream)
    lost_blob = JobSpec(image_digest="0" * 64, label_digest="", item_id="ghost", filename="ghost.jpg", item_ids=())
    job, _ = queue.enqueue(lost_blob)
    wait_until(lambda: queue.get_job(job.job_id).state.value == "failed", 30, what="the job without a blob to fail",
               interval_s=0.05, detail=lambda: queue.get_job(job.job_id).state)  # fmt: skip
    listed = json.loads(run(env, "dlq", "list", "--json").stdout)
    assert listed["total"] == 1
    [letter] = listed["dead_letters"]
    assert letter["job_id"] == job.job_id and "is missing" in letter["error"] and letter["filename"] == "ghost.jpg"
    assert run(env, "dlq", "retry", job.job_id).stdout.strip() == "retried 1"
    assert "needs JOB_IDs or --all" in run(env, "dlq", "purge", check_exit=1).stderr
    assert "NOT_FOUND" in run(env, "dlq", "retry", "no-such-job", check_exit=1).stderr
    # Failed again: the blob is still lost.
    wait_until(lambda: json.loads(run(env, "dlq", "list", "--json").stdout)["total"] == 1, 30,
               what="the retried job to be dead-lettered again", interval_s=0.1)  # fmt: skip
    assert run(env, "dlq", "purge", "--all").stdout.strip() == "purged 1"
    assert json.loads(run(env, "stats", "--json").stdout)["dead_lettered"] == 0


def test_ingest_backs_off_while_the_queue_is_full_and_submits_everything(tmp_path, tiny_model_dir, sample_catalog):
    import threading

    from kloset.core.config import Role
    from kloset.core.ingest.queue import IngestQueue, connect
    from kloset.program import Program
    from tests.conftest import client_env, role_settings

    program = Program(role_settings(tmp_path, tiny_model_dir, max_backlog=2), frozenset({Role.INGEST}))
    program.start()
    try:
        settings = program.settings
        queue = IngestQueue(connect(f"unix://{settings.redis_dir.resolve() / 'redis.sock'}"))
        drained = []

        def slow_consumer():  # stands in for workers: frees a place in the queue now and then
            deadline = time.monotonic() + 60
            while len(drained) < 5 and time.monotonic() < deadline:
                time.sleep(0.3)  # the behaviour under test: a consumer this slow keeps the queue full
                for delivery in queue.read("slow", count=1, block_ms=100):
                    queue.complete(delivery, [])
                    drained.append(delivery.job_id)

        consumer = threading.Thread(target=slow_consumer)
        consumer.start()
        result = run(client_env(program), "ingest", sample_catalog, "--limit", "5", "--json", "--timeout", "60")
        consumer.join()
        assert json.loads(result.stdout)["submitted"] == 5
        assert len(drained) == 5
    finally:
        program.stop()


def test_search_an_unannotated_photo_finds_each_garment_with_its_own_results(ingested, sample_catalog):
    env, _ = ingested
    answer = json.loads(run(env, "search", sample_catalog / "images" / "0007.jpg", "--json").stdout)
    assert [g["group"] for g in answer["garments"]] == ["top", "bottom"]
    for garment in answer["garments"]:
        # SOFT, the default, excludes nothing of the group: never a short list while the group has garments.
        assert garment["policy"] == "soft" and garment["filter"] == {"category": [], "color": []}
        assert len(garment["results"]) == 10 and {h["group"] for h in garment["results"]} == {garment["group"]}
        box = garment["box"]
        assert box["width"] > 0 and box["height"] > 0  # the segmenter's box, in the photo's pixels


def test_train_evaluate_and_segment_from_the_command_line(tmp_path, sample_catalog, tiny_segmenter_dir):
    env = {"PATH": "/usr/bin:/bin", "KLOSET_SEGMENTER_DIR": str(tiny_segmenter_dir)}
    trained = run(env, "train", "attributes", "--data", sample_catalog, "--out", tmp_path / "a", "--input-size", "32",
                  "--epochs", "2")  # fmt: skip
    assert json.loads(trained.stdout.splitlines()[-1])["version"].startswith("attributes-32px-")
    evaluate = ["evaluate", "attributes", "--data", sample_catalog, "--model", tmp_path / "a", "--json"]
    figures = json.loads(run(env, *evaluate, "--plots", tmp_path / "plots").stdout)
    assert figures["n"] == 54 and {"category_accuracy", "color_accuracy", "category_macro_f1", "color_macro_f1",
                                   "per_class"} <= set(figures)  # fmt: skip
    assert (tmp_path / "plots" / "confusion_category.png").is_file()
    assert (tmp_path / "plots" / "confusion_color.png").is_file()
    run(env, "train", "segmenter", "--data", sample_catalog, "--out", tmp_path / "s", "--height", "64", "--width", "32",
        "--epochs", "2")  # fmt: skip
    segmentation = json.loads(
        run(env, "evaluate", "segmenter", "--data", sample_catalog, "--model", tmp_path / "s", "--json").stdout
    )
    assert segmentation["n"] == 30 and {"miou", "iou_top", "iou_bottom", "pixel_accuracy"} <= set(segmentation)
    written = run(env, "segment", sample_catalog / "images" / "0001.jpg", "--out", tmp_path / "seg").stdout.split()
    assert {Path(p).name for p in written} == {"0001_overlay.png", "0001_top.png", "0001_bottom.png"}
    assert "multiples of 32" in run(env, "train", "segmenter", "--data", sample_catalog, "--height", "50",
                                    check_exit=1).stderr  # fmt: skip


def test_migrate_store_copies_a_local_mode_catalog_and_refuses_when_there_is_none(tmp_path):
    import numpy as np

    from kloset.core.garments.labels import Group
    from kloset.core.index.qdrant_store import QdrantGarmentStore
    from kloset.core.index.store import CatalogGarment

    old = QdrantGarmentStore.open(url=None, api_key=None, path=str(tmp_path / "var" / "qdrant"),
                                  collection="garments", dim=4, color_dim=2)  # fmt: skip
    old.upsert([CatalogGarment(f"p{i}/top", Group.TOP, "blouse", "white", "x.jpg", "m", np.ones(4, np.float32),
                               np.ones(2, np.float32)) for i in range(5)])  # fmt: skip
    old.close()
    env = {"PATH": "/usr/bin:/bin", "KLOSET_DATA_DIR": str(tmp_path / "var")}
    report = json.loads(run(env, "migrate-store", "--json").stdout)
    assert report["copied"] == 5 and report["store_count"] == 5 and report["target"].endswith("edge/garments")
    empty = run({"PATH": "/usr/bin:/bin", "KLOSET_DATA_DIR": str(tmp_path / "none")}, "migrate-store", check_exit=1)
    assert "nothing to migrate" in empty.stderr


def test_bench_store_prints_the_figures_other_tools_read(tmp_path):
    result = run({"PATH": "/usr/bin:/bin"}, "bench", "store", "--points", "400", "--sizes", "200,400", "--queries",
                 "5", "--quiet", "--json", "--docs", tmp_path)  # fmt: skip
    figures = json.loads(result.stdout)
    assert figures["points"] == 400 and set(figures["backends"]) == {"edge", "local"}
    for backend in ("edge", "local"):
        for name in ("category", "category_color", "none"):
            s = figures["backends"][backend][name]
            assert set(s) == {"p50_ms", "p99_ms", "recall_at_10"} and 0 <= s["recall_at_10"] <= 1
    assert set(figures["by_points"]) == {"200", "400"}
    assert "<!-- bench:store -->" in (tmp_path / "benchmarks.md").read_text()
    assert (tmp_path / "benchmarks" / "store.png").stat().st_size > 10_000
