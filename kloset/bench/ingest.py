"""`kloset bench ingest`: garments/s end to end (gRPC -> Redis -> workers -> store) on a fresh temporary stack,
against the backbone's ceiling measured in the same run (docs/benchmarks.md, section "ingest")."""

import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from kloset.bench.document import markdown_table, stamp
from kloset.bench.model import measure_backbone
from kloset.core.config import Role, Settings
from kloset.core.garments.folders import scan_catalog

_SUBMITTERS = 4  # as `kloset ingest`
_POLL_S = 0.5
_CEILING_BATCHES = (8, 32)  # where the backbone peaks (`kloset bench model`)


@dataclass(frozen=True)
class IngestBench:
    data: Path
    limit: int | None = None
    ceiling_seconds: float = 5.0
    timeout_s: float = 3600.0


def run_ingest_benchmark(bench: IngestBench, settings: Settings, log: Callable[[str], None]) -> dict:
    """Measure the ceiling, then index the folder's photos through `kloset serve` on a temporary data folder."""
    photos = scan_catalog(bench.data).photos
    photos = photos[: bench.limit] if bench.limit is not None else photos
    log(f"ceiling: the backbone at batch {'/'.join(map(str, _CEILING_BATCHES))}")
    ceiling = measure_backbone(settings, _CEILING_BATCHES, bench.ceiling_seconds)
    from kloset.bench.stack import TemporaryStack

    with tempfile.TemporaryDirectory(prefix="kloset-bench-ingest-") as tmp:
        log("starting kloset serve on a temporary data folder")
        with TemporaryStack(Path(tmp) / "stack") as stack:
            log(f"submitting {len(photos)} photos")
            run = _ingest(stack.addr(Role.INGEST), photos, bench.timeout_s, settings.max_message_bytes)
    return _figures(bench, settings, ceiling, run)


def _ingest(addr: str, photos: list, timeout_s: float, max_message_bytes: int) -> dict:
    import grpc

    from kloset.cli.ingest import submit_photo
    from kloset.v1 import ingest_pb2, ingest_pb2_grpc

    options = [("grpc.max_send_message_length", max_message_bytes)]
    with grpc.insecure_channel(addr, options=options) as channel:
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        deadline = time.monotonic() + timeout_s
        start = time.time()
        with ThreadPoolExecutor(_SUBMITTERS) as pool:
            outcomes = list(pool.map(lambda photo: submit_photo(stub, photo, "", deadline), photos))
        submitted_s = time.time() - start
        responses = [o for o in outcomes if isinstance(o, ingest_pb2.SubmitResponse)]
        accepted = [o.job.job_id for o in responses if not o.duplicate]
        while True:
            stats = stub.GetQueueStats(ingest_pb2.GetQueueStatsRequest(), timeout=30)
            if stats.queued == 0 and stats.pending == 0:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"ingest did not drain in {timeout_s:.0f} s: {stats}")
            time.sleep(_POLL_S)
        jobs = [stub.GetJob(ingest_pb2.GetJobRequest(job_id=j), timeout=30).job for j in accepted]
    done = sorted((j for j in jobs if j.state == ingest_pb2.JOB_STATE_DONE), key=lambda j: j.updated_at)
    finished = [j.updated_at for j in jobs if j.state in (ingest_pb2.JOB_STATE_DONE, ingest_pb2.JOB_STATE_FAILED)]
    timeline, garments = [], 0
    for job in done:
        garments += len(job.item_ids)
        timeline.append((round(job.updated_at - start, 3), garments))
    return {
        "start": start,
        "wall_s": (max(finished) - start) if finished else 0.0,
        "submitted_s": submitted_s,
        "photos": len(photos),
        "jobs_done": len(done),
        "jobs_failed": sum(j.state == ingest_pb2.JOB_STATE_FAILED for j in jobs),
        "jobs_skipped": sum(o.job.state == ingest_pb2.JOB_STATE_SKIPPED for o in responses),
        "submit_errors": len(outcomes) - len(responses),
        "garments": garments,
        "timeline": timeline,
    }


def _figures(bench: IngestBench, settings: Settings, ceiling: dict, run: dict) -> dict:
    from kloset.core.models.runtime import thread_counts

    wall = run["wall_s"]
    garments_per_s = run["garments"] / wall if wall > 0 else 0.0
    ceiling_garments = ceiling["ceiling_images_per_s"] / ceiling["views_per_garment"]
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
        ["garments indexed", figures["garments"]],
        ["photos: done / failed / skipped", jobs],
        ["wall time, first submit to last done (s)", figures["wall_s"]],
        ["submission alone (s)", figures["submitted_s"]],
    ]
    return "\n".join([
        "## Ingest: end to end against the ceiling (`kloset bench ingest`)",
        "",
        f"{stamp()}. `{figures['data']}`{limit}: {figures['photos']} photos submitted over gRPC "
        f"({_SUBMITTERS} submitters, as `kloset ingest`) to a fresh `kloset serve` (embedded redis-server, Qdrant "
        f"Edge, temporary data folder). Settings: {s['workers']} workers, batches of {s['batch_garments']} garments "
        f"or {s['batch_wait_ms']:g} ms, prepare threads {s['prepare_threads'] or 'one per core'}, TensorFlow "
        f"threads {s['tf_intra_op_threads']} intra-op / {s['tf_inter_op_threads']} inter-op. The ceiling is the "
        f"backbone's best images/s (batch {figures['ceiling_batch']}, measured in the same run) divided by "
        f"{figures['views_per_garment']} views per garment.",
        "",
        markdown_table(["figure", "value"], rows),
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
