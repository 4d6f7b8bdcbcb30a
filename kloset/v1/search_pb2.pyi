from kloset.v1 import garment_pb2 as _garment_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FilterPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FILTER_POLICY_UNSPECIFIED: _ClassVar[FilterPolicy]
    FILTER_POLICY_STRICT: _ClassVar[FilterPolicy]
    FILTER_POLICY_SOFT: _ClassVar[FilterPolicy]
    FILTER_POLICY_NONE: _ClassVar[FilterPolicy]
FILTER_POLICY_UNSPECIFIED: FilterPolicy
FILTER_POLICY_STRICT: FilterPolicy
FILTER_POLICY_SOFT: FilterPolicy
FILTER_POLICY_NONE: FilterPolicy

class SearchFilter(_message.Message):
    __slots__ = ("categories", "colors")
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    COLORS_FIELD_NUMBER: _ClassVar[int]
    categories: _containers.RepeatedScalarFieldContainer[str]
    colors: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, categories: _Optional[_Iterable[str]] = ..., colors: _Optional[_Iterable[str]] = ...) -> None: ...

class SearchOptions(_message.Message):
    __slots__ = ("policy", "offset", "min_score", "group_by_photo")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_PHOTO_FIELD_NUMBER: _ClassVar[int]
    policy: FilterPolicy
    offset: int
    min_score: float
    group_by_photo: bool
    def __init__(self, policy: _Optional[_Union[FilterPolicy, str]] = ..., offset: _Optional[int] = ..., min_score: _Optional[float] = ..., group_by_photo: _Optional[bool] = ...) -> None: ...

class SearchByImageRequest(_message.Message):
    __slots__ = ("image", "garments", "filter", "top_k", "options")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    GARMENTS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    garments: _containers.RepeatedCompositeFieldContainer[_garment_pb2.GarmentRegion]
    filter: SearchFilter
    top_k: int
    options: SearchOptions
    def __init__(self, image: _Optional[bytes] = ..., garments: _Optional[_Iterable[_Union[_garment_pb2.GarmentRegion, _Mapping]]] = ..., filter: _Optional[_Union[SearchFilter, _Mapping]] = ..., top_k: _Optional[int] = ..., options: _Optional[_Union[SearchOptions, _Mapping]] = ...) -> None: ...

class SearchByItemRequest(_message.Message):
    __slots__ = ("item_id", "filter", "top_k", "options")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    filter: SearchFilter
    top_k: int
    options: SearchOptions
    def __init__(self, item_id: _Optional[str] = ..., filter: _Optional[_Union[SearchFilter, _Mapping]] = ..., top_k: _Optional[int] = ..., options: _Optional[_Union[SearchOptions, _Mapping]] = ...) -> None: ...

class SearchHit(_message.Message):
    __slots__ = ("item_id", "score", "group", "category", "color", "source", "visual_similarity", "color_similarity", "photo_id", "support")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    VISUAL_SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    COLOR_SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    PHOTO_ID_FIELD_NUMBER: _ClassVar[int]
    SUPPORT_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    score: float
    group: _garment_pb2.GarmentGroup
    category: str
    color: str
    source: str
    visual_similarity: float
    color_similarity: float
    photo_id: str
    support: int
    def __init__(self, item_id: _Optional[str] = ..., score: _Optional[float] = ..., group: _Optional[_Union[_garment_pb2.GarmentGroup, str]] = ..., category: _Optional[str] = ..., color: _Optional[str] = ..., source: _Optional[str] = ..., visual_similarity: _Optional[float] = ..., color_similarity: _Optional[float] = ..., photo_id: _Optional[str] = ..., support: _Optional[int] = ...) -> None: ...

class GarmentResults(_message.Message):
    __slots__ = ("group", "category", "color", "filter", "results", "box", "top_categories", "top_colors", "policy", "relaxed", "relaxation")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    TOP_CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    TOP_COLORS_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    RELAXED_FIELD_NUMBER: _ClassVar[int]
    RELAXATION_FIELD_NUMBER: _ClassVar[int]
    group: _garment_pb2.GarmentGroup
    category: str
    color: str
    filter: SearchFilter
    results: _containers.RepeatedCompositeFieldContainer[SearchHit]
    box: _garment_pb2.BoundingBox
    top_categories: _containers.RepeatedCompositeFieldContainer[_garment_pb2.LabelScore]
    top_colors: _containers.RepeatedCompositeFieldContainer[_garment_pb2.LabelScore]
    policy: FilterPolicy
    relaxed: bool
    relaxation: str
    def __init__(self, group: _Optional[_Union[_garment_pb2.GarmentGroup, str]] = ..., category: _Optional[str] = ..., color: _Optional[str] = ..., filter: _Optional[_Union[SearchFilter, _Mapping]] = ..., results: _Optional[_Iterable[_Union[SearchHit, _Mapping]]] = ..., box: _Optional[_Union[_garment_pb2.BoundingBox, _Mapping]] = ..., top_categories: _Optional[_Iterable[_Union[_garment_pb2.LabelScore, _Mapping]]] = ..., top_colors: _Optional[_Iterable[_Union[_garment_pb2.LabelScore, _Mapping]]] = ..., policy: _Optional[_Union[FilterPolicy, str]] = ..., relaxed: _Optional[bool] = ..., relaxation: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("indexed", "model_versions")
    INDEXED_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    indexed: int
    model_versions: _containers.RepeatedCompositeFieldContainer[ModelVersionCount]
    def __init__(self, indexed: _Optional[int] = ..., model_versions: _Optional[_Iterable[_Union[ModelVersionCount, _Mapping]]] = ...) -> None: ...

class ModelVersionCount(_message.Message):
    __slots__ = ("model_version", "garments")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    GARMENTS_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    garments: int
    def __init__(self, model_version: _Optional[str] = ..., garments: _Optional[int] = ...) -> None: ...

class ReindexRequest(_message.Message):
    __slots__ = ("max_failures",)
    MAX_FAILURES_FIELD_NUMBER: _ClassVar[int]
    max_failures: int
    def __init__(self, max_failures: _Optional[int] = ...) -> None: ...

class ReindexResponse(_message.Message):
    __slots__ = ("progress", "summary")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    progress: ReindexProgress
    summary: ReindexSummary
    def __init__(self, progress: _Optional[_Union[ReindexProgress, _Mapping]] = ..., summary: _Optional[_Union[ReindexSummary, _Mapping]] = ...) -> None: ...

class ReindexProgress(_message.Message):
    __slots__ = ("done", "total")
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    done: int
    total: int
    def __init__(self, done: _Optional[int] = ..., total: _Optional[int] = ...) -> None: ...

class ReindexSummary(_message.Message):
    __slots__ = ("re_embedded", "copied", "failed", "failures", "model_version", "model_versions", "seconds")
    RE_EMBEDDED_FIELD_NUMBER: _ClassVar[int]
    COPIED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    re_embedded: int
    copied: int
    failed: int
    failures: _containers.RepeatedCompositeFieldContainer[ReindexFailure]
    model_version: str
    model_versions: _containers.RepeatedCompositeFieldContainer[ModelVersionCount]
    seconds: float
    def __init__(self, re_embedded: _Optional[int] = ..., copied: _Optional[int] = ..., failed: _Optional[int] = ..., failures: _Optional[_Iterable[_Union[ReindexFailure, _Mapping]]] = ..., model_version: _Optional[str] = ..., model_versions: _Optional[_Iterable[_Union[ModelVersionCount, _Mapping]]] = ..., seconds: _Optional[float] = ...) -> None: ...

class ReindexFailure(_message.Message):
    __slots__ = ("item_id", "reason")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    reason: str
    def __init__(self, item_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CompleteLookRequest(_message.Message):
    __slots__ = ("item_id", "image", "garment", "top_k", "filter")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    GARMENT_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    image: bytes
    garment: _garment_pb2.GarmentRegion
    top_k: int
    filter: SearchFilter
    def __init__(self, item_id: _Optional[str] = ..., image: _Optional[bytes] = ..., garment: _Optional[_Union[_garment_pb2.GarmentRegion, _Mapping]] = ..., top_k: _Optional[int] = ..., filter: _Optional[_Union[SearchFilter, _Mapping]] = ...) -> None: ...

class CompleteLookResponse(_message.Message):
    __slots__ = ("garments",)
    GARMENTS_FIELD_NUMBER: _ClassVar[int]
    garments: _containers.RepeatedCompositeFieldContainer[GarmentResults]
    def __init__(self, garments: _Optional[_Iterable[_Union[GarmentResults, _Mapping]]] = ...) -> None: ...

class GetGarmentImagesRequest(_message.Message):
    __slots__ = ("item_ids", "max_side")
    ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    MAX_SIDE_FIELD_NUMBER: _ClassVar[int]
    item_ids: _containers.RepeatedScalarFieldContainer[str]
    max_side: int
    def __init__(self, item_ids: _Optional[_Iterable[str]] = ..., max_side: _Optional[int] = ...) -> None: ...

class GarmentImage(_message.Message):
    __slots__ = ("item_id", "jpeg")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    JPEG_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    jpeg: bytes
    def __init__(self, item_id: _Optional[str] = ..., jpeg: _Optional[bytes] = ...) -> None: ...

class GetGarmentImagesResponse(_message.Message):
    __slots__ = ("images",)
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[GarmentImage]
    def __init__(self, images: _Optional[_Iterable[_Union[GarmentImage, _Mapping]]] = ...) -> None: ...
