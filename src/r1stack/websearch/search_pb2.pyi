# Generated from search.proto by r1stack.websearch._regenerate (grpcio-tools). Do not edit.
# ruff: noqa
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SearchRequest(_message.Message):
    __slots__ = ("query", "top_k", "language", "time_range")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TIME_RANGE_FIELD_NUMBER: _ClassVar[int]
    query: str
    top_k: int
    language: str
    time_range: str
    def __init__(
        self,
        query: _Optional[str] = ...,
        top_k: _Optional[int] = ...,
        language: _Optional[str] = ...,
        time_range: _Optional[str] = ...,
    ) -> None: ...

class SearchResult(_message.Message):
    __slots__ = ("title", "url", "snippet", "engine", "published")
    TITLE_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    SNIPPET_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    title: str
    url: str
    snippet: str
    engine: str
    published: str
    def __init__(
        self,
        title: _Optional[str] = ...,
        url: _Optional[str] = ...,
        snippet: _Optional[str] = ...,
        engine: _Optional[str] = ...,
        published: _Optional[str] = ...,
    ) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("results", "provider", "cached")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SearchResult]
    provider: str
    cached: bool
    def __init__(
        self,
        results: _Optional[_Iterable[_Union[SearchResult, _Mapping]]] = ...,
        provider: _Optional[str] = ...,
        cached: _Optional[bool] = ...,
    ) -> None: ...

class FetchRequest(_message.Message):
    __slots__ = ("url", "max_chars")
    URL_FIELD_NUMBER: _ClassVar[int]
    MAX_CHARS_FIELD_NUMBER: _ClassVar[int]
    url: str
    max_chars: int
    def __init__(self, url: _Optional[str] = ..., max_chars: _Optional[int] = ...) -> None: ...

class FetchResponse(_message.Message):
    __slots__ = ("url", "final_url", "title", "text", "content_type", "truncated")
    URL_FIELD_NUMBER: _ClassVar[int]
    FINAL_URL_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    url: str
    final_url: str
    title: str
    text: str
    content_type: str
    truncated: bool
    def __init__(
        self,
        url: _Optional[str] = ...,
        final_url: _Optional[str] = ...,
        title: _Optional[str] = ...,
        text: _Optional[str] = ...,
        content_type: _Optional[str] = ...,
        truncated: _Optional[bool] = ...,
    ) -> None: ...
