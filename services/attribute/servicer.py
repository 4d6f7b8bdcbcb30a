"""AttributeService: decode the request, classify in the core, encode the answer."""

import grpc
from kloset.services.convert import prediction_to_proto, regions_from_proto
from kloset.services.status import grpc_errors

from kloset.core.classifier import AttributeClassifier
from kloset.core.limits import InputLimits
from kloset.v1 import attribute_pb2, attribute_pb2_grpc

SERVICE_NAME = attribute_pb2.DESCRIPTOR.services_by_name["AttributeService"].full_name
# Calls that run the models: their own server threads (services/server.DedicatedPool)
MODEL_METHODS = (f"/{SERVICE_NAME}/Classify",)


class AttributeServicer(attribute_pb2_grpc.AttributeServiceServicer):
    def __init__(self, classifier: AttributeClassifier, limits: InputLimits) -> None:
        self._classifier = classifier
        self._limits = limits

    @grpc_errors
    def Classify(self, request: attribute_pb2.ClassifyRequest, context: grpc.ServicerContext):
        result = self._classifier.classify(request.image, regions_from_proto(request.garments, self._limits))
        return attribute_pb2.ClassifyResponse(
            garments=[prediction_to_proto(g) for g in result.garments], model_version=result.model_version
        )

    def register(self, server: grpc.Server) -> None:
        attribute_pb2_grpc.add_AttributeServiceServicer_to_server(self, server)
