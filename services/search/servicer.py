"""SearchService: decode the request, search in the core, encode the answer."""

import queue
import threading

import grpc
from kloset.services.convert import (
    filter_from_proto,
    options_from_proto,
    regions_from_proto,
    results_to_proto,
)
from kloset.services.status import grpc_errors, grpc_stream_errors, short_details

from kloset.core.errors import InvalidInput
from kloset.core.index.garment_images import GarmentImages
from kloset.core.index.outfits import OutfitFinder
from kloset.core.index.reindex import CatalogReindexer, ReindexAborted, ReindexRunning, ReindexSummary
from kloset.core.index.search import SearchEngine
from kloset.core.index.store import GarmentStore
from kloset.core.limits import InputLimits
from kloset.v1 import search_pb2, search_pb2_grpc

SERVICE_NAME = search_pb2.DESCRIPTOR.services_by_name["SearchService"].full_name
# Calls that run the models (a photo to classify): their own server threads (services/server.DedicatedPool)
MODEL_METHODS = (f"/{SERVICE_NAME}/SearchByImage", f"/{SERVICE_NAME}/CompleteLook")


class SearchServicer(search_pb2_grpc.SearchServiceServicer):
    def __init__(self, engine: SearchEngine, outfits: OutfitFinder, images: GarmentImages, limits: InputLimits,
                 store: GarmentStore, reindexer: CatalogReindexer) -> None:  # fmt: skip
        self._engine = engine
        self._limits = limits
        self._outfits = outfits
        self._images = images
        self._store = store
        self._reindexer = reindexer

    @grpc_errors
    def SearchByImage(self, request: search_pb2.SearchByImageRequest, context: grpc.ServicerContext):
        regions = regions_from_proto(request.garments, self._limits)
        options = options_from_proto(request.options)
        timings: dict[str, float] = {}
        answers = self._engine.search_by_image(
            request.image, regions, filter_from_proto(request.filter), request.top_k, options, timings
        )
        # Where the time went, for clients and benchmarks: trailing metadata leaves kloset.v1's messages as they are
        metadata = [(f"kloset-{name.replace('_', '-')}", f"{ms:.2f}") for name, ms in timings.items()]
        context.set_trailing_metadata(metadata)
        return search_pb2.SearchByImageResponse(garments=[results_to_proto(a) for a in answers])

    @grpc_errors
    def SearchByItem(self, request: search_pb2.SearchByItemRequest, context: grpc.ServicerContext):
        answer = self._engine.search_by_item(
            request.item_id, filter_from_proto(request.filter), request.top_k, options_from_proto(request.options)
        )
        return search_pb2.SearchByItemResponse(garments=[results_to_proto(answer)])

    @grpc_errors
    def GetIndexStats(self, request: search_pb2.GetIndexStatsRequest, context: grpc.ServicerContext):
        return search_pb2.GetIndexStatsResponse(
            indexed=self._engine.indexed(), model_versions=_version_counts(self._store.model_versions())
        )

    @grpc_stream_errors
    def Reindex(self, request: search_pb2.ReindexRequest, context: grpc.ServicerContext):
        """The core reindexes on a thread of its own; this call streams what it reports and stops it when the
        client goes away (the old catalog stays live)."""
        updates: queue.Queue = queue.Queue()
        stop = threading.Event()
        context.add_callback(stop.set)  # cancelled, deadline passed, or the server stopping
        max_failures = request.max_failures if request.HasField("max_failures") else None

        def reindex() -> None:
            try:
                updates.put(self._reindexer.run(lambda done, total: updates.put((done, total)), stop.is_set,
                                                max_failures))  # fmt: skip
            except BaseException as exc:  # handed to the call's thread, which reports it
                updates.put(exc)

        threading.Thread(target=reindex, name="reindex", daemon=True).start()
        while True:
            update = updates.get()
            if isinstance(update, tuple):
                yield search_pb2.ReindexResponse(progress=search_pb2.ReindexProgress(done=update[0], total=update[1]))
            elif isinstance(update, ReindexRunning | ReindexAborted):
                # A status set and returned, not raised: grpc_stream_errors would make these INTERNAL.
                running = isinstance(update, ReindexRunning)
                context.set_code(grpc.StatusCode.FAILED_PRECONDITION if running else grpc.StatusCode.ABORTED)
                context.set_details(short_details(str(update)))
                return
            elif isinstance(update, BaseException):
                raise update
            else:
                yield search_pb2.ReindexResponse(summary=_summary_to_proto(update))
                return

    @grpc_errors
    def CompleteLook(self, request: search_pb2.CompleteLookRequest, context: grpc.ServicerContext):
        proposed = filter_from_proto(request.filter)
        if bool(request.item_id) == bool(request.image):
            raise InvalidInput("give either item_id or image, not both and not neither")
        if request.item_id:
            if request.HasField("garment"):
                raise InvalidInput("garment is a region of the image; it cannot go with item_id")
            answers = [self._outfits.by_item(request.item_id, proposed, request.top_k)]
        else:
            regions = regions_from_proto([request.garment], self._limits) if request.HasField("garment") else []
            answers = self._outfits.by_image(request.image, regions, proposed, request.top_k)
        return search_pb2.CompleteLookResponse(garments=[results_to_proto(a) for a in answers])

    @grpc_errors
    def GetGarmentImages(self, request: search_pb2.GetGarmentImagesRequest, context: grpc.ServicerContext):
        crops = self._images.crops(list(request.item_ids), request.max_side or 256)
        return search_pb2.GetGarmentImagesResponse(
            images=[search_pb2.GarmentImage(item_id=item_id, jpeg=jpeg) for item_id, jpeg in crops]
        )

    def register(self, server: grpc.Server) -> None:
        search_pb2_grpc.add_SearchServiceServicer_to_server(self, server)


def _version_counts(counts: dict[str, int]) -> list[search_pb2.ModelVersionCount]:
    return [search_pb2.ModelVersionCount(model_version=v, garments=n) for v, n in sorted(counts.items())]


def _summary_to_proto(summary: ReindexSummary) -> search_pb2.ReindexSummary:
    return search_pb2.ReindexSummary(
        re_embedded=summary.re_embedded,
        copied=summary.copied,
        failed=summary.failed,
        failures=[search_pb2.ReindexFailure(item_id=f.item_id, reason=f.reason) for f in summary.failures],
        model_version=summary.model_version,
        model_versions=_version_counts(summary.model_versions),
        seconds=summary.seconds,
    )
