"""SearchService: decode the request, search in the core, encode the answer."""

import grpc
from kloset.services.convert import (
    filter_from_proto,
    options_from_proto,
    regions_from_proto,
    results_to_proto,
)
from kloset.services.status import grpc_errors

from kloset.core.errors import InvalidInput
from kloset.core.index.garment_images import GarmentImages
from kloset.core.index.outfits import OutfitFinder
from kloset.core.index.search import SearchEngine
from kloset.v1 import search_pb2, search_pb2_grpc

SERVICE_NAME = search_pb2.DESCRIPTOR.services_by_name["SearchService"].full_name


class SearchServicer(search_pb2_grpc.SearchServiceServicer):
    def __init__(self, engine: SearchEngine, outfits: OutfitFinder, images: GarmentImages, max_garments: int) -> None:
        self._engine = engine
        self._max_garments = max_garments
        self._outfits = outfits
        self._images = images

    @grpc_errors
    def SearchByImage(self, request: search_pb2.SearchByImageRequest, context: grpc.ServicerContext):
        regions = regions_from_proto(request.garments, self._max_garments)
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
        return search_pb2.GetIndexStatsResponse(indexed=self._engine.indexed())

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
            regions = regions_from_proto([request.garment], self._max_garments) if request.HasField("garment") else []
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
