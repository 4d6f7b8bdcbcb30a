from kloset.v1 import garment_pb2 as _garment_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SearchFilter(_message.Message):
    __slots__ = ("categories", "colors")
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    COLORS_FIELD_NUMBER: _ClassVar[int]
    categories: _containers.RepeatedScalarFieldContainer[str]
    colors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, categories: _Optional[_Iterable[str]] = ..., colors: _Optional[_Iterable[str]] = ...) -> None: ...

class SearchByImageRequest(_message.Message):
    __slots__ = ("image", "garments", "filter", "top_k")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    GARMENTS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    garments: _containers.RepeatedCompositeFieldContainer[_garment_pb2.GarmentRegion]
    filter: SearchFilter
    top_k: int
    def __init__(self, image: _Optional[bytes] = ..., garments: _Optional[_Iterable[_Union[_garment_pb2.GarmentRegion, _Mapping]]] = ..., filter: _Optional[_Union[SearchFilter, _Mapping]] = ..., top_k: _Optional[int] = ...) -> None: ...

class SearchByItemRequest(_message.Message):
    __slots__ = ("item_id", "filter", "top_k")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    filter: SearchFilter
    top_k: int
    def __init__(self, item_id: _Optional[str] = ..., filter: _Optional[_Union[SearchFilter, _Mapping]] = ..., top_k: _Optional[int] = ...) -> None: ...

class SearchHit(_message.Message):
    __slots__ = ("item_id", "score", "group", "category", "color", "source")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    score: float
    group: _garment_pb2.GarmentGroup
    category: str
    color: str
    source: str
    def __init__(self, item_id: _Optional[str] = ..., score: _Optional[float] = ..., group: _Optional[_Union[_garment_pb2.GarmentGroup, str]] = ..., category: _Optional[str] = ..., color: _Optional[str] = ..., source: _Optional[str] = ...) -> None: ...

class GarmentResults(_message.Message):
    __slots__ = ("group", "category", "color", "filter", "results")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    group: _garment_pb2.GarmentGroup
    category: str
    color: str
    filter: SearchFilter
    results: _containers.RepeatedCompositeFieldContainer[SearchHit]
    def __init__(self, group: _Optional[_Union[_garment_pb2.GarmentGroup, str]] = ..., category: _Optional[str] = ..., color: _Optional[str] = ..., filter: _Optional[_Union[SearchFilter, _Mapping]] = ..., results: _Optional[_Iterable[_Union[SearchHit, _Mapping]]] = ...) -> None: ...

class SearchByImageResponse(_message.Message):
    __slots__ = ("garments",)
    GARMENTS_FIELD_NUMBER: _ClassVar[int]
    garments: _containers.RepeatedCompositeFieldContainer[GarmentResults]
    def __init__(self, garments: _Optional[_Iterable[_Union[GarmentResults, _Mapping]]] = ...) -> None: ...

class SearchByItemResponse(_message.Message):
    __slots__ = ("garments",)
    GARMENTS_FIELD_NUMBER: _ClassVar[int]
    garments: _containers.RepeatedCompositeFieldContainer[GarmentResults]
    def __init__(self, garments: _Optional[_Iterable[_Union[GarmentResults, _Mapping]]] = ...) -> None: ...

class GetIndexStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetIndexStatsResponse(_message.Message):
    __slots__ = ("indexed",)
    INDEXED_FIELD_NUMBER: _ClassVar[int]
    indexed: int
    def __init__(self, indexed: _Optional[int] = ...) -> None: ...
