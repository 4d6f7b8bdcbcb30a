"""IngestService: validate and queue submissions, report jobs, queue depth and dead letters."""

import threading
from collections.abc import Iterator

import grpc
from kloset.services.convert import dead_letter_to_proto, job_to_proto
from kloset.services.status import grpc_errors, grpc_stream_errors, status_code

from kloset.core.errors import InvalidInput, KlosetError, Overloaded
from kloset.core.ingest.catalog import CatalogIngest, Submission
from kloset.core.ingest.queue import IngestQueue
from kloset.v1 import ingest_pb2, ingest_pb2_grpc

SERVICE_NAME = ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name
_DEFAULT_DEAD_LETTER_LIMIT = 100
MAX_DEAD_LETTER_LIMIT = 1000  # a page; more could read the whole stream into one answer and outgrow a message


def _submission(request: ingest_pb2.SubmitRequest) -> Submission:
    return Submission(
        image=request.image, label_json=request.label_json, item_id=request.item_id, filename=request.filename,
        force=request.force,
    )


def _check_job_ids(job_ids, limit: int) -> None:
    """A GetJobs request names 1 to `limit` ids, none of them empty."""
    if not job_ids:
        raise InvalidInput("GetJobs needs at least one job id")
    if len(job_ids) > limit:
        raise InvalidInput(f"a GetJobs call may ask for at most {limit} job ids (KLOSET_MAX_JOB_IDS); this one asks "
                           f"for {len(job_ids)}: split them over several calls")  # fmt: skip
    empty = next((i for i, job_id in enumerate(job_ids) if not job_id), None)
    if empty is not None:
        raise InvalidInput(f"job_ids[{empty}] is empty")


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    def __init__(self, catalog: CatalogIngest, queue: IngestQueue, *, max_batch_items: int = 1000,
                 max_watchers: int = 4, max_job_ids: int = 1000) -> None:  # fmt: skip
        """max_batch_items: photos one SubmitBatch may stream (KLOSET_MAX_BATCH_ITEMS); max_watchers: WatchJob
        streams open at once (KLOSET_MAX_WATCHERS), so that watchers never take every server thread from Submit;
        max_job_ids: ids one GetJobs may ask for (KLOSET_MAX_JOB_IDS), so one answer stays a bounded message."""
        self._catalog = catalog
        self._queue = queue
        self._max_batch_items = max_batch_items
        self._max_job_ids = max_job_ids
        self._max_watchers = max_watchers
        self._watchers = threading.BoundedSemaphore(max_watchers) if max_watchers else None

    @grpc_errors
    def Submit(self, request: ingest_pb2.SubmitRequest, context: grpc.ServicerContext):
        job, duplicate = self._catalog.submit(_submission(request))
        return ingest_pb2.SubmitResponse(job=job_to_proto(job), duplicate=duplicate)

    @grpc_errors
    def SubmitBatch(self, request_iterator: Iterator[ingest_pb2.SubmitRequest], context: grpc.ServicerContext):
        results = []
        for index, request in enumerate(request_iterator):
            if index >= self._max_batch_items:  # stop reading: the rest of the stream is never buffered
                raise InvalidInput(
                    f"a SubmitBatch may stream at most {self._max_batch_items} photos (KLOSET_MAX_BATCH_ITEMS); "
                    f"the first {self._max_batch_items} were queued, and sending them again is safe (each comes "
                    "back as a duplicate with its job)"
                )
            try:
                job, duplicate = self._catalog.submit(_submission(request))
            except KlosetError as exc:  # one bad item must not cost the others
                results.append(ingest_pb2.SubmitResult(index=index, error_code=status_code(exc).name, error=str(exc)))
                continue
            results.append(ingest_pb2.SubmitResult(index=index, job=job_to_proto(job), duplicate=duplicate))
        return ingest_pb2.SubmitBatchResponse(results=results)

    @grpc_errors
    def GetJob(self, request: ingest_pb2.GetJobRequest, context: grpc.ServicerContext):
        return ingest_pb2.GetJobResponse(job=job_to_proto(self._queue.get_job(request.job_id)))

    @grpc_errors
    def GetJobs(self, request: ingest_pb2.GetJobsRequest, context: grpc.ServicerContext):
        _check_job_ids(request.job_ids, self._max_job_ids)
        jobs, missing = self._queue.get_jobs(list(request.job_ids))
        return ingest_pb2.GetJobsResponse(jobs=[job_to_proto(job) for job in jobs], not_found=missing)

    @grpc_stream_errors
    def WatchJob(self, request: ingest_pb2.WatchJobRequest, context: grpc.ServicerContext):
        if self._watchers is None or not self._watchers.acquire(blocking=False):
            raise Overloaded(
                f"{self._max_watchers} WatchJob streams are open on this server (KLOSET_MAX_WATCHERS): poll GetJob, "
                "or retry when one ends"
            )
        try:
            for job in self._queue.watch(request.job_id, context.is_active):
                yield ingest_pb2.WatchJobResponse(job=job_to_proto(job))
        finally:
            self._watchers.release()

    @grpc_errors
    def GetQueueStats(self, request: ingest_pb2.GetQueueStatsRequest, context: grpc.ServicerContext):
        stats = self._queue.stats()
        return ingest_pb2.GetQueueStatsResponse(
            queued=stats.queued, pending=stats.pending, dead_lettered=stats.dead_lettered
        )

    @grpc_errors
    def ListDeadLetters(self, request: ingest_pb2.ListDeadLettersRequest, context: grpc.ServicerContext):
        if request.limit > MAX_DEAD_LETTER_LIMIT:
            raise InvalidInput(f"limit may be at most {MAX_DEAD_LETTER_LIMIT} dead letters; this request asks for "
                               f"{request.limit}")  # fmt: skip
        letters, total = self._queue.dead_letters(request.limit or _DEFAULT_DEAD_LETTER_LIMIT)
        return ingest_pb2.ListDeadLettersResponse(
            dead_letters=[dead_letter_to_proto(letter) for letter in letters], total=total
        )

    @grpc_errors
    def RetryDeadLetters(self, request: ingest_pb2.RetryDeadLettersRequest, context: grpc.ServicerContext):
        retried = self._queue.retry_dead_letters(list(request.job_ids), everything=request.all)
        return ingest_pb2.RetryDeadLettersResponse(retried=retried)

    @grpc_errors
    def PurgeDeadLetters(self, request: ingest_pb2.PurgeDeadLettersRequest, context: grpc.ServicerContext):
        purged = self._queue.purge_dead_letters(list(request.job_ids), everything=request.all)
        return ingest_pb2.PurgeDeadLettersResponse(purged=purged)

    def register(self, server: grpc.Server) -> None:
        ingest_pb2_grpc.add_IngestServiceServicer_to_server(self, server)
