"""IngestService: validate and queue submissions, report jobs, queue depth and dead letters."""

from collections.abc import Iterator

import grpc
from kloset.services.convert import dead_letter_to_proto, job_to_proto
from kloset.services.status import grpc_errors, grpc_stream_errors, status_code

from kloset.core.errors import InvalidInput, KlosetError
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


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    def __init__(self, catalog: CatalogIngest, queue: IngestQueue) -> None:
        self._catalog = catalog
        self._queue = queue

    @grpc_errors
    def Submit(self, request: ingest_pb2.SubmitRequest, context: grpc.ServicerContext):
        job, duplicate = self._catalog.submit(_submission(request))
        return ingest_pb2.SubmitResponse(job=job_to_proto(job), duplicate=duplicate)

    @grpc_errors
    def SubmitBatch(self, request_iterator: Iterator[ingest_pb2.SubmitRequest], context: grpc.ServicerContext):
        results = []
        for index, request in enumerate(request_iterator):
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

    @grpc_stream_errors
    def WatchJob(self, request: ingest_pb2.WatchJobRequest, context: grpc.ServicerContext):
        for job in self._queue.watch(request.job_id, context.is_active):
            yield ingest_pb2.WatchJobResponse(job=job_to_proto(job))

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
