"""`kloset bench ingest`: garments/s end to end (gRPC -> Redis -> workers -> store) on a fresh temporary stack,
against the backbone's ceiling measured in the same run (docs/benchmarks.md, section "ingest")."""

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kloset.bench.document import markdown_table, stamp
from kloset.bench.model import measure_backbone
from kloset.bench.server_metrics import grown, scrape
from kloset.client.submission import SUBMITTERS
from kloset.core.config import Role, Settings
from kloset.core.garments.folders import scan_catalog

_CEILING_BATCHES = (1, 8, 32)  # TFLite peaks at 1, the TF graph at 8 to 32 (`kloset bench model`)
GRAPH_VIEWS = 2  # views per garment ingest ran at on the TF graph (the crop and its mirror image)


@dataclass(frozen=True)
class IngestBench:
    data: Path
    limit: int | None = None
    ceiling_seconds: float = 5.0
    timeout_s: float = 3600.0


def run_ingest_benchmark(bench: IngestBench, settings: Settings, log: Callable[[str], None]) -> dict:
    """Measure the ceiling, then index the folder's photos through `kloset serve` on a temporary data folder,
    submitted and waited on by `kloset ingest --wait`'s own functions."""
    photos = scan_catalog(bench.data).photos
    photos = photos[: bench.limit] if bench.limit is not None else photos
    log(f"ceiling: the backbone at batch {'/'.join(map(str, _CEILING_BATCHES))}")
    ceiling = measure_backbone(settings, _CEILING_BATCHES, bench.ceiling_seconds)
    from kloset.bench.stack import TemporaryStack, free_port

    with tempfile.TemporaryDirectory(prefix="kloset-bench-ingest-") as tmp:
        log("starting kloset serve on a temporary data folder")
        metrics_port = free_port()
        with TemporaryStack(Path(tmp) / "stack", KLOSET_METRICS_PORT=str(metrics_port)) as stack:
            metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
            before = scrape(metrics_url)
            log(f"submitting {len(photos)} photos, then waiting as `kloset ingest --wait` does")
            run = _ingest(stack.addr(Role.INGEST), photos, bench.timeout_s, settings.max_message_bytes)
            run["stages"] = _stages(before, _scrape_when_acked(metrics_url, before, run["jobs_done"]))
    return _figures(bench, settings, ceiling, run)


def _ingest(addr: str, photos: list, timeout_s: float, max_message_bytes: int) -> dict:
    import grpc

    from kloset.client.submission import IngestReport, submit_all, wait_all
    from kloset.v1 import ingest_pb2, ingest_pb2_grpc

    options = [("grpc.max_send_message_length", max_message_bytes)]
    report = IngestReport()
    with grpc.insecure_channel(addr, options=options) as channel:
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        deadline = time.monotonic() + timeout_s
        start = time.time()
        submit_all(stub, photos, report, deadline, show=False)
        submitted_s = time.time() - start
        submit_errors = report.failed  # before waiting, every failure is a photo the server refused
        wait_all(stub, report, deadline, show=False)
    done = sorted((j for j in report.finished if j.state == ingest_pb2.JOB_STATE_DONE), key=lambda j: j.updated_at)
    timeline, garments = [], 0
    for job in done:
        garments += len(job.item_ids)
        timeline.append((round(job.updated_at - start, 3), garments))
    finished = [j.updated_at for j in report.finished]
    return {
        "start": start,
        "wall_s": (max(finished) - start) if finished else 0.0,
        "submitted_s": submitted_s,
        "photos": len(photos),
        "jobs_done": report.done,
        "jobs_failed": report.failed - submit_errors,
        "jobs_skipped": report.skipped,
        "submit_errors": submit_errors,
        "garments": garments,
        "status_calls": report.status_calls,
        "jobs_waited_on": len(report.finished),
        "timeline": timeline,
    }


def _scrape_when_acked(url: str, before, jobs_done: int, timeout_s: float = 10.0):
    """The server's metrics once every done job's ack is recorded: a client sees a job done an instant before the
    worker's timer around the acknowledgement observes it."""
    deadline = time.monotonic() + timeout_s
    while True:
        after = scrape(url)
        if grown(before, after, "kloset_ingest_stage_seconds_count", stage="ack") >= jobs_done:
            return after
        if time.monotonic() > deadline:
            return after
        time.sleep(0.1)


def _stages(before, after) -> dict[str, tuple[float, int]]:
    """(seconds, observations) per stage of a garment's way, from the server's histograms over the run.

    decode_and_crop is the blob read, decode, crop (and segmentation of an unlabelled photo) per job; model the
    attribute model's forward passes; store the upserts; batching_and_other what the batch's index step spent
    beside the two (waiting for the batch to fill, post-processing); queue the wait from XADD to a worker; ack the
    acknowledgement. Wall time on the thread doing it: stages run side by side on several threads."""

    def stage(name: str, **labels: str) -> tuple[float, int]:
        return grown(before, after, f"{name}_sum", **labels), int(grown(before, after, f"{name}_count", **labels))

    index_s, index_n = stage("kloset_ingest_stage_seconds", stage="index")
    model_s, model_n = stage("kloset_model_forward_seconds", model="attributes")
    store_s, store_n = stage("kloset_store_seconds", operation="upsert")
    return {
        "queue": stage("kloset_ingest_stage_seconds", stage="queue"),
        "decode_and_crop": stage("kloset_ingest_stage_seconds", stage="prepare"),
        "model": (model_s, model_n),
        "store": (store_s, store_n),
        "batching_and_other": (max(0.0, index_s - model_s - store_s), index_n),
        "ack": stage("kloset_ingest_stage_seconds", stage="ack"),
    }


def _breakdown(stages: dict[str, tuple[float, int]], garments: int) -> dict[str, dict]:
    """Per stage: its seconds over the run, how often it ran, milliseconds each time (for queue: a job's mean wait)
    and milliseconds per garment indexed (work; for queue the summed waits, latency rather than work)."""
    return {
        name: {
            "seconds": round(seconds, 3),
            "count": count,
            "mean_ms": round(1000 * seconds / count, 2) if count else 0.0,
            "ms_per_garment": round(1000 * seconds / garments, 2) if garments else 0.0,
        }
        for name, (seconds, count) in stages.items()
    }


def _figures(bench: IngestBench, settings: Settings, ceiling: dict, run: dict) -> dict:
    from kloset.core.models.runtime import thread_counts

    wall = run["wall_s"]
    garments_per_s = run["garments"] / wall if wall > 0 else 0.0
    ceiling_garments = ceiling["ceiling_images_per_s"] / ceiling["views_per_garment"]
    # Issue 18's yardstick: the TensorFlow graph's ceiling at the two views per garment ingest used to run.
    graph_garments = ceiling["runtimes"]["tf_graph"]["ceiling_images_per_s"] / GRAPH_VIEWS
    intra, inter = thread_counts(settings.tf_intra_op_threads, settings.tf_inter_op_threads)
    return {
        "data": bench.data.name,
        "limit": bench.limit,
        "photos": run["photos"],
        "garments": run["garments"],
        "jobs_done": run["jobs_done"],
        "jobs_failed": run["jobs_failed"],
        "jobs_skipped": run["jobs_skipped"],
        "submit_errors": run["submit_errors"],
        "wall_s": round(wall, 2),
        "submitted_s": round(run["submitted_s"], 2),
        "garments_per_s": round(garments_per_s, 2),
        "photos_per_s": round(run["jobs_done"] / wall, 2) if wall > 0 else 0.0,
        "ceiling_images_per_s": ceiling["ceiling_images_per_s"],
        "ceiling_batch": ceiling["best_batch"],
        "views_per_garment": ceiling["views_per_garment"],
        "ceiling_garments_per_s": round(ceiling_garments, 2),
        "ratio_to_ceiling": round(garments_per_s / ceiling_garments, 3) if ceiling_garments > 0 else 0.0,
        "runtime": ceiling["runtime"],
        "tf_graph_ceiling_garments_per_s": round(graph_garments, 2),
        "ratio_to_tf_graph_ceiling": round(garments_per_s / graph_garments, 3) if graph_garments > 0 else 0.0,
        "status_calls": run["status_calls"],
        "status_calls_per_job": round(run["status_calls"] / run["jobs_waited_on"], 4) if run["jobs_waited_on"] else 0.0,
        "time_breakdown": _breakdown(run["stages"], run["garments"]),
        "image_size": ceiling["image_size"],
        "settings": {
            "workers": settings.workers,
            "batch_garments": settings.batch_garments,
            "batch_wait_ms": settings.batch_wait_ms,
            "prepare_threads": settings.prepare_threads,
            "tf_intra_op_threads": intra,
            "tf_inter_op_threads": inter,
            "inference_batch_size": settings.inference_batch_size,
        },
        "timeline": run["timeline"],
    }


def ingest_markdown(figures: dict) -> str:
    """The "ingest" section of docs/benchmarks.md."""
    s = figures["settings"]
    limit = f" (first {figures['limit']})" if figures["limit"] is not None else ""
    jobs = f"{figures['jobs_done']} / {figures['jobs_failed']} / {figures['jobs_skipped']}"
    rows = [
        ["garments/s", figures["garments_per_s"]],
        ["photos/s", figures["photos_per_s"]],
        ["ceiling garments/s", figures["ceiling_garments_per_s"]],
        ["**ratio_to_ceiling**", f"**{figures['ratio_to_ceiling']:.2f}**"],
        ["the TF graph's ceiling at 2 views (garments/s)", figures["tf_graph_ceiling_garments_per_s"]],
        ["ratio to the TF graph's 2-view ceiling", f"{figures['ratio_to_tf_graph_ceiling']:.2f}"],
        ["garments indexed", figures["garments"]],
        ["photos: done / failed / skipped", jobs],
        ["wall time, first submit to last done (s)", figures["wall_s"]],
        ["submission alone (s)", figures["submitted_s"]],
        ["status calls (GetJobs) / per job", f"{figures['status_calls']} / {figures['status_calls_per_job']:.3f}"],
    ]
    stages = [
        [name, stage["ms_per_garment"], stage["mean_ms"], stage["count"], stage["seconds"]]
        for name, stage in figures["time_breakdown"].items()
    ]
    return "\n".join([
        "## Ingest: end to end against the ceiling (`kloset bench ingest`)",
        "",
        f"{stamp()}. `{figures['data']}`{limit}: {figures['photos']} photos submitted over gRPC and waited on "
        f"by `kloset ingest --wait`'s own code ({SUBMITTERS} submitters, GetJobs sweeps) to a fresh `kloset serve` "
        f"(embedded redis-server, Qdrant Edge, temporary data folder). Settings: {s['workers']} workers, batches "
        f"of {s['batch_garments']} garments or {s['batch_wait_ms']:g} ms, prepare threads "
        f"{s['prepare_threads'] or 'one per core'}, TensorFlow threads {s['tf_intra_op_threads']} intra-op / "
        f"{s['tf_inter_op_threads']} inter-op. The ceiling is the backbone's best images/s (batch "
        f"{figures['ceiling_batch']}, measured in the same run, on the fastest runtime; ingest runs "
        f"{figures['runtime']}) divided by {figures['views_per_garment']} view(s) per garment. Beside it, the "
        "TensorFlow graph's ceiling at 2 views, what ingest was held to before the TFLite runtime and one view.",
        "",
        markdown_table(["figure", "value"], rows),
        "",
        "Where a garment's time goes, from the server's own histograms over the run (wall time on the thread doing "
        "it; workers, prepare threads and the model run side by side, so stages overlap). `decode_and_crop` is the "
        "blob read, decode and crop per job; `model` the attribute model's forward passes (per batch); `store` the "
        "upserts (per batch); `batching_and_other` the rest of each batch's index step (filling the batch, "
        "post-processing); `ack` the acknowledgement per job. Their ms per garment is the work a garment costs. "
        "`queue` is each job's wait from its XADD to a worker (ms each: the mean wait): latency, not work; it grows "
        "while submission outruns the workers.",
        "",
        markdown_table(["stage", "ms per garment", "ms each", "count", "seconds in all"], stages),
        "",
        "![garments indexed over time](benchmarks/ingest.png)",
    ])  # fmt: skip


def save_ingest_plot(figures: dict, path: Path) -> Path:
    """Garments indexed over time, beside the line the ceiling would draw."""
    from kloset.bench.document import pyplot, save_figure

    plt = pyplot()

    times = [0.0] + [t for t, _ in figures["timeline"]]
    counts = [0] + [n for _, n in figures["timeline"]]
    fig, ax = plt.subplots(figsize=(8, 4.8))
    ax.step(times, counts, where="post", color="tab:blue",
            label=f"indexed: {figures['garments_per_s']:.1f} garments/s")  # fmt: skip
    end = max(times[-1], 1e-3)
    ax.plot([0, end], [0, figures["ceiling_garments_per_s"] * end], linestyle="--", color="gray",
            label=f"ceiling: {figures['ceiling_garments_per_s']:.1f} garments/s")  # fmt: skip
    ax.set_ylim(0, max(counts[-1], 1) * 1.15)
    ax.set_xlim(0, end * 1.02)
    ax.set_xlabel("seconds since the first submit")
    ax.set_ylabel("garments indexed (acknowledged)")
    ax.set_title(f"kloset bench ingest: {figures['data']}, ratio to ceiling {figures['ratio_to_ceiling']:.2f}")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left")
    return save_figure(fig, path)
