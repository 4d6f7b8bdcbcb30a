"""SearchService: decode the request, search in the core, encode the answer."""

import grpc
from kloset.services.convert import filter_from_proto, regions_from_proto, results_to_proto
from kloset.services.status import grpc_errors

from kloset.core.index.search import SearchEngine
from kloset.v1 import search_pb2, search_pb2_grpc

SERVICE_NAME = search_pb2.DESCRIPTOR.services_by_name["SearchService"].full_name


class SearchServicer(search_pb2_grpc.SearchServiceServicer):
    def __init__(self, engine: SearchEngine) -> None:
        self._engine = engine

    @grpc_errors
    def SearchByImage(self, request: search_pb2.SearchByImageRequest, context: grpc.ServicerContext):
        answers = self._engine.search_by_image(
            request.image, regions_from_proto(request.garments), filter_from_proto(request.filter), request.top_k
        )
        return search_pb2.SearchByImageResponse(garments=[results_to_proto(a) for a in answers])

    @grpc_errors
    def SearchByItem(self, request: search_pb2.SearchByItemRequest, context: grpc.ServicerContext):
        answer = self._engine.search_by_item(request.item_id, filter_from_proto(request.filter), request.top_k)
        return search_pb2.SearchByItemResponse(garments=[results_to_proto(answer)])

    @grpc_errors
    def GetIndexStats(self, request: search_pb2.GetIndexStatsRequest, context: grpc.ServicerContext):
        return search_pb2.GetIndexStatsResponse(indexed=self._engine.indexed())

    def register(self, server: grpc.Server) -> None:
        search_pb2_grpc.add_SearchServiceServicer_to_server(self, server)
