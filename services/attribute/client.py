"""The attribute service seen from other roles: an AttributeClassifier that calls it over gRPC."""

from collections.abc import Sequence

import grpc
from kloset.services.convert import prediction_from_proto, regions_to_proto
from kloset.services.status import core_error

from kloset.core.classifier import Classification
from kloset.core.garments.regions import Region
from kloset.v1 import attribute_pb2, attribute_pb2_grpc


class RemoteAttributeClassifier:
    def __init__(self, address: str, *, max_message_bytes: int, timeout_s: float = 60.0) -> None:
        self._channel = grpc.insecure_channel(
            address,
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", max_message_bytes),
            ],
        )
        self._stub = attribute_pb2_grpc.AttributeServiceStub(self._channel)
        self._timeout_s = timeout_s

    def classify(self, image: bytes, regions: Sequence[Region]) -> Classification:
        request = attribute_pb2.ClassifyRequest(image=image, garments=regions_to_proto(regions))
        try:
            response = self._stub.Classify(request, timeout=self._timeout_s, wait_for_ready=True)
        except grpc.RpcError as exc:
            raise core_error(exc) from None
        return Classification(
            garments=[prediction_from_proto(g) for g in response.garments], model_version=response.model_version
        )

    def close(self) -> None:
        self._channel.close()
