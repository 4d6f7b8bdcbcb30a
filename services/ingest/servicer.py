"""IngestService: validate and queue submissions, report jobs and queue depth."""

import grpc
from kloset.services.convert import job_to_proto
from kloset.services.status import grpc_errors

from kloset.core.catalog import CatalogIngest, Submission
from kloset.core.queue import IngestQueue
from kloset.v1 import ingest_pb2, ingest_pb2_grpc

SERVICE_NAME = ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    def __init__(self, catalog: CatalogIngest, queue: IngestQueue) -> None:
        self._catalog = catalog
        self._queue = queue

    @grpc_errors
    def Submit(self, request: ingest_pb2.SubmitRequest, context: grpc.ServicerContext):
        job = self._catalog.submit(
            Submission(
                image=request.image, label_json=request.label_json, item_id=request.item_id, filename=request.filename
            )
        )
        return ingest_pb2.SubmitResponse(job=job_to_proto(job))

    @grpc_errors
    def GetJob(self, request: ingest_pb2.GetJobRequest, context: grpc.ServicerContext):
        return ingest_pb2.GetJobResponse(job=job_to_proto(self._queue.get_job(request.job_id)))

    @grpc_errors
    def GetQueueStats(self, request: ingest_pb2.GetQueueStatsRequest, context: grpc.ServicerContext):
        stats = self._queue.stats()
        return ingest_pb2.GetQueueStatsResponse(
            queued=stats.queued, pending=stats.pending, dead_lettered=stats.dead_lettered
        )

    def register(self, server: grpc.Server) -> None:
        ingest_pb2_grpc.add_IngestServiceServicer_to_server(self, server)
