"""The attribute service seen from other roles: an AttributeClassifier that calls it over gRPC."""

import contextvars
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import grpc
from kloset.services.convert import prediction_from_proto, regions_to_proto
from kloset.services.status import core_error

from kloset.core.classifier import Classification, PreparedPhoto
from kloset.core.garments.regions import Region
from kloset.v1 import attribute_pb2, attribute_pb2_grpc


class RemoteAttributeClassifier:
    def __init__(self, channel: grpc.Channel, *, timeout_s: float = 60.0, concurrent_requests: int = 8) -> None:
        """channel: from services.channels.open_channel (key, TLS, request id and deadline); timeout_s: the most a
        call may take when the request being served has no deadline of its own. concurrent_requests: how many
        photos of one classify_prepared call are in flight at once; the attribute service batches concurrent
        requests into shared forward passes."""
        self._channel = channel
        self._stub = attribute_pb2_grpc.AttributeServiceStub(self._channel)
        self._timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(concurrent_requests, thread_name_prefix="attribute-client")

    def classify(self, image: bytes, regions: Sequence[Region]) -> Classification:
        request = attribute_pb2.ClassifyRequest(image=image, garments=regions_to_proto(regions))
        try:
            response = self._stub.Classify(request, timeout=self._timeout_s, wait_for_ready=True)
        except grpc.RpcError as exc:
            raise core_error(exc) from None
        return Classification(
            garments=[prediction_from_proto(g) for g in response.garments], model_version=response.model_version
        )

    def prepare(self, image: bytes, regions: Sequence[Region]) -> PreparedPhoto:
        return PreparedPhoto(image, regions)  # the service decodes and crops

    def classify_prepared(self, photos: Sequence[PreparedPhoto]) -> list[Classification | Exception]:
        # Each call runs in a copy of this thread's context: the request's id and deadline go with it.
        calls = [self._pool.submit(contextvars.copy_context().run, self._outcome, photo) for photo in photos]
        return [call.result() for call in calls]

    def _outcome(self, photo: PreparedPhoto) -> Classification | Exception:
        try:
            return self.classify(photo.image, photo.regions)
        except Exception as exc:
            return exc

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self._channel.close()
