from kloset.v1 import garment_pb2 as _garment_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClassifyRequest(_message.Message):
    __slots__ = ("image", "garments")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    GARMENTS_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    garments: _containers.RepeatedCompositeFieldContainer[_garment_pb2.GarmentRegion]
    def __init__(self, image: _Optional[bytes] = ..., garments: _Optional[_Iterable[_Union[_garment_pb2.GarmentRegion, _Mapping]]] = ...) -> None: ...

class GarmentAttributes(_message.Message):
    __slots__ = ("group", "category", "color", "top_categories", "top_colors", "embedding", "categories", "colors", "color_vector", "box")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    TOP_CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    TOP_COLORS_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    COLORS_FIELD_NUMBER: _ClassVar[int]
    COLOR_VECTOR_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    group: _garment_pb2.GarmentGroup
    category: str
    color: str
    top_categories: _containers.RepeatedCompositeFieldContainer[_garment_pb2.LabelScore]
    top_colors: _containers.RepeatedCompositeFieldContainer[_garment_pb2.LabelScore]
    embedding: _containers.RepeatedScalarFieldContainer[float]
    categories: _containers.RepeatedCompositeFieldContainer[_garment_pb2.LabelScore]
    colors: _containers.RepeatedCompositeFieldContainer[_garment_pb2.LabelScore]
    color_vector: _containers.RepeatedScalarFieldContainer[float]
    box: _garment_pb2.BoundingBox
    def __init__(self, group: _Optional[_Union[_garment_pb2.GarmentGroup, str]] = ..., category: _Optional[str] = ..., color: _Optional[str] = ..., top_categories: _Optional[_Iterable[_Union[_garment_pb2.LabelScore, _Mapping]]] = ..., top_colors: _Optional[_Iterable[_Union[_garment_pb2.LabelScore, _Mapping]]] = ..., embedding: _Optional[_Iterable[float]] = ..., categories: _Optional[_Iterable[_Union[_garment_pb2.LabelScore, _Mapping]]] = ..., colors: _Optional[_Iterable[_Union[_garment_pb2.LabelScore, _Mapping]]] = ..., color_vector: _Optional[_Iterable[float]] = ..., box: _Optional[_Union[_garment_pb2.BoundingBox, _Mapping]] = ...) -> None: ...

class ClassifyResponse(_message.Message):
    __slots__ = ("garments", "model_version")
    GARMENTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    garments: _containers.RepeatedCompositeFieldContainer[GarmentAttributes]
    model_version: str
    def __init__(self, garments: _Optional[_Iterable[_Union[GarmentAttributes, _Mapping]]] = ..., model_version: _Optional[str] = ...) -> None: ...
