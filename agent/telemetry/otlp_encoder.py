"""OTLP trace export encoded straight to protobuf wire format, without protobuf objects.

The SDK's ``encode_spans`` (``opentelemetry.exporter.otlp.proto.common``) builds a protobuf
message per span, attribute and value in Python: ~41 µs per span on this machine (measured),
most of the agent's tracing overhead. This module writes the same
``ExportTraceServiceRequest`` bytes by hand: the tags are constants, and what repeats from span
to span (the resource and scope blocks, each attribute key, each common ``key: value`` pair) is
encoded once and cached.

It mirrors the SDK encoder field for field, so ``ExportTraceServiceRequest.FromString`` of its
output equals the SDK's message: spans grouped by resource, then scope, in first-seen order (by
the objects' ``==``, as the SDK's dicts do); ``flags`` always carry the "has is_remote" bit;
``status``, ``resource``, ``scope`` and every ``KeyValue.value`` are present even when empty;
links carry no ``trace_state`` (the SDK leaves it out). An attribute whose value cannot be
encoded is left out and the rest of the span is kept, as the SDK does.

Spans are duck-typed like ``opentelemetry.sdk.trace.ReadableSpan``. Resource and scope blocks
are cached per object, so a resource or scope must not change once spans use it (the SDK's
never do). The caches are plain dicts, safe to share between exporter threads under the GIL.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from opentelemetry.trace import SpanContext, SpanKind, StatusCode, TraceFlags, TraceState

__all__ = ["encode_spans"]

_log = logging.getLogger("agent.telemetry")

_pack_fixed64: Final[Callable[[int], bytes]] = struct.Struct("<Q").pack
_pack_double: Final[Callable[[float], bytes]] = struct.Struct("<d").pack
# Span fields 7 and 8 (start and end time, fixed64) in one call.
_pack_times: Final[Callable[[int, int, int, int], bytes]] = struct.Struct("<BQBQ").pack

_SMALL_VARINTS: Final = tuple(bytes((n,)) for n in range(0x80))

_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1
_UINT32_MAX: Final = (1 << 32) - 1

# Tags: (field number << 3) | wire type; wire types 0 varint, 1 fixed64, 2 bytes, 5 fixed32.
# AnyValue
_ANY_STRING: Final = b"\x0a"
_ANY_BOOL_TRUE: Final = b"\x10\x01"
_ANY_BOOL_FALSE: Final = b"\x10\x00"
_ANY_INT: Final = b"\x18"
_ANY_DOUBLE: Final = b"\x21"
_ANY_ARRAY: Final = b"\x2a"
_ANY_KVLIST: Final = b"\x32"
_ANY_BYTES: Final = b"\x3a"
# KeyValue; ArrayValue.values and KeyValueList.values are field 1 too
_KV_KEY: Final = b"\x0a"
_KV_VALUE: Final = b"\x12"
_LIST_VALUES: Final = b"\x0a"
# The repeated ``attributes`` field of each message that has one
_RESOURCE_ATTRS: Final = 0x0A
_SCOPE_ATTRS: Final = 0x1A
_SPAN_ATTRS: Final = 0x4A
_EVENT_ATTRS: Final = 0x1A
_LINK_ATTRS: Final = 0x22
_KVLIST_ATTRS: Final = 0x0A
# ExportTraceServiceRequest, ResourceSpans, ScopeSpans
_REQUEST_RESOURCE_SPANS: Final = b"\x0a"
_RESOURCE_SPANS_RESOURCE: Final = b"\x0a"
_RESOURCE_SPANS_SCOPE_SPANS: Final = b"\x12"
_RESOURCE_SPANS_SCHEMA_URL: Final = b"\x1a"
_SCOPE_SPANS_SCOPE: Final = b"\x0a"
_SCOPE_SPANS_SPAN: Final = b"\x12"
_SCOPE_SPANS_SCHEMA_URL: Final = b"\x1a"
# InstrumentationScope
_SCOPE_NAME: Final = b"\x0a"
_SCOPE_VERSION: Final = b"\x12"
# Span (trace and span ids are always 16 and 8 bytes: the length is part of the constant)
_SPAN_TRACE_ID: Final = b"\x0a\x10"
_SPAN_SPAN_ID: Final = b"\x12\x08"
_SPAN_TRACE_STATE: Final = b"\x1a"
_SPAN_PARENT_ID: Final = b"\x22\x08"
_SPAN_NAME: Final = b"\x2a"
_SPAN_START: Final = 0x39
_SPAN_END: Final = 0x41
_SPAN_DROPPED_ATTRS: Final = b"\x50"
_SPAN_EVENT: Final = b"\x5a"
_SPAN_DROPPED_EVENTS: Final = b"\x60"
_SPAN_LINK: Final = b"\x6a"
_SPAN_DROPPED_LINKS: Final = b"\x70"
_SPAN_STATUS: Final = b"\x7a"
# Span.flags (field 16, fixed32): the SDK always sets "has is_remote", plus "is_remote" when the
# parent (for a link: the linked context) is remote.
_FLAGS_HAS_IS_REMOTE: Final = 0x100
_FLAGS_IS_REMOTE: Final = 0x200
_SPAN_FLAGS_LOCAL: Final = b"\x85\x01" + struct.pack("<I", _FLAGS_HAS_IS_REMOTE)
_SPAN_FLAGS_REMOTE: Final = b"\x85\x01" + struct.pack("<I", _FLAGS_HAS_IS_REMOTE | _FLAGS_IS_REMOTE)
# Span.Event
_EVENT_TIME: Final = b"\x09"
_EVENT_NAME: Final = b"\x12"
_EVENT_DROPPED_ATTRS: Final = b"\x20"
# Span.Link
_LINK_TRACE_ID: Final = b"\x0a\x10"
_LINK_SPAN_ID: Final = b"\x12\x08"
_LINK_DROPPED_ATTRS: Final = b"\x28"
_LINK_FLAGS_LOCAL: Final = b"\x35" + struct.pack("<I", _FLAGS_HAS_IS_REMOTE)
_LINK_FLAGS_REMOTE: Final = b"\x35" + struct.pack("<I", _FLAGS_HAS_IS_REMOTE | _FLAGS_IS_REMOTE)
# Status
_STATUS_MESSAGE: Final = b"\x12"
_STATUS_CODE: Final = b"\x18"

# Enum members hash in Python (slow); the members are singletons, so look them up by id().
_KIND_BY_VALUE: Final = {kind: b"\x30" + bytes((kind.value + 1,)) for kind in SpanKind}
_KIND_BY_ID: Final = {id(kind): field for kind, field in _KIND_BY_VALUE.items()}
# A Status without a description: the whole field, tag included (code 0 is left out).
_STATUS_BY_CODE_ID: Final = {
    id(code): _SPAN_STATUS
    + (b"\x02" + _STATUS_CODE + bytes((code.value,)) if code.value else b"\x00")
    for code in StatusCode
}


def _context_is_tuple() -> bool:
    """Whether SpanContext is still the tuple (trace_id, span_id, is_remote, flags, state, ...)."""
    probe = SpanContext(3, 5, True, TraceFlags(1), TraceState([("k", "v")]))
    return (probe[0], probe[1], probe[2], probe[4]) == (3, 5, True, probe.trace_state)


_CONTEXT_IS_TUPLE: Final = _context_is_tuple()

# Caches of encoded bytes. Bounded by clearing: the common values come right back.
_CACHE_MAX: Final = 4096
_CACHED_STR_MAX: Final = 256  # longer strings (URLs with ids, stack traces) rarely repeat
#: (attributes tag, key, type(value), value) -> the whole tagged KeyValue. type(value) is part of
#: the key because True == 1 == 1.0 and they hash alike.
_kv_cache: dict[tuple[int, object, type, object], bytes] = {}
#: (attributes tag, key) -> the tagged KeyValue up to the 8 bytes of a double value.
_double_prefixes: dict[tuple[int, object], bytes] = {}
#: (tag, string) -> the tagged, length-prefixed UTF-8 (span and event names, schema URLs).
_strings: dict[tuple[bytes, str], bytes] = {}
#: id(resource) -> (resource, its ResourceSpans.resource field, its schema_url field).
_resources: dict[int, tuple[object, bytes, bytes]] = {}
#: id(scope) -> (scope, its ScopeSpans.scope field, its schema_url field).
_scopes: dict[int, tuple[object, bytes, bytes]] = {}
_BLOCK_CACHE_MAX: Final = 64
#: Value types already warned about, so a bad attribute logs once, not once per span.
_warned_types: set[str] = set()


def _varint(n: int) -> bytes:
    """Unsigned LEB128, the wire form of lengths and of uint32/int64/enum fields."""
    if n < 0x80:
        return _SMALL_VARINTS[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _int64(n: int) -> bytes:
    """An int64 varint: negatives in 64-bit two's complement (ten bytes), as protobuf does."""
    if n < _INT64_MIN or n > _INT64_MAX:
        raise ValueError(f"{n} does not fit in an int64")
    return _varint(n + (1 << 64) if n < 0 else n)


def _delimited(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    return tag + _varint(len(payload)) + payload


def _string(tag: bytes, text: str) -> bytes:
    """A string field, cached: span names and schema URLs repeat from span to span."""
    cache_key = (tag, text)
    encoded = _strings.get(cache_key)
    if encoded is None:
        encoded = _delimited(tag, text.encode())
        if len(_strings) >= _CACHE_MAX:
            _strings.clear()
        _strings[cache_key] = encoded
    return encoded


def _any_value(value: object) -> bytes:
    """An AnyValue's body, checked in the SDK's ``_encode_value`` order; raises if unsupported."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return _ANY_BOOL_TRUE if value else _ANY_BOOL_FALSE
    if isinstance(value, str):
        return _delimited(_ANY_STRING, value.encode())
    if isinstance(value, int):
        return _ANY_INT + _int64(value)
    if isinstance(value, float):
        return _ANY_DOUBLE + _pack_double(value)
    if isinstance(value, bytes):
        return _delimited(_ANY_BYTES, value)
    if isinstance(value, Sequence):
        items = b"".join([_delimited(_LIST_VALUES, _any_value(item)) for item in value])
        return _delimited(_ANY_ARRAY, items)
    if isinstance(value, Mapping):
        pairs = b"".join(
            [_delimited(_LIST_VALUES, _key_value(str(k), v)) for k, v in value.items()]
        )
        return _delimited(_ANY_KVLIST, pairs)
    raise TypeError(f"invalid attribute value type {type(value).__name__}")


def _key_part(key: object) -> bytes:
    """KeyValue.key; an empty key is the proto3 default and is left out."""
    if not isinstance(key, str):
        raise TypeError(f"invalid attribute key type {type(key).__name__}")
    return _delimited(_KV_KEY, key.encode()) if key else b""


def _key_value(key: object, value: object) -> bytes:
    """A KeyValue's body. ``value`` is always present, as the SDK sets it even when empty."""
    return _key_part(key) + _delimited(_KV_VALUE, _any_value(value))


def _dropped(key: object, value: object, error: Exception) -> None:
    """Log, once per value type, an attribute left out because it could not be encoded."""
    name = type(value).__name__
    if name not in _warned_types:
        _warned_types.add(name)
        _log.warning("OTLP export leaves out attribute %r (%s): %s", key, name, error)


def _as_dict(attributes: Mapping[Any, Any]) -> Mapping[Any, Any]:
    """A plain dict of the same items when the mapping can copy itself into one.

    The SDK's span attributes are a ``MappingProxyType`` over ``BoundedAttributes``, whose
    ``items()`` runs ``__getitem__`` in Python per key (~1.5 µs for 11 attributes); its ``copy()``
    is a C-level dict copy (~0.1 µs).
    """
    copy = getattr(attributes, "copy", None)
    if copy is not None:
        copied = copy()
        if type(copied) is dict:
            return copied
    return attributes


def _attributes(attributes: Mapping[Any, Any], tag: int, out: list[bytes]) -> None:
    """Append each attribute as a tagged KeyValue; skip (and log) any that cannot be encoded."""
    tag_bytes = _SMALL_VARINTS[tag]
    if type(attributes) is not dict:
        attributes = _as_dict(attributes)
    for key, value in attributes.items():
        kind = type(value)
        if kind is str or kind is int or kind is bool:
            cache_key = (tag, key, kind, value)
            encoded = _kv_cache.get(cache_key)
            if encoded is None:
                try:
                    encoded = _delimited(tag_bytes, _key_value(key, value))
                except Exception as error:
                    _dropped(key, value, error)
                    continue
                if kind is not str or len(value) <= _CACHED_STR_MAX:
                    if len(_kv_cache) >= _CACHE_MAX:
                        _kv_cache.clear()
                    _kv_cache[cache_key] = encoded
            out.append(encoded)
        elif kind is float:
            prefix_key = (tag, key)
            prefix = _double_prefixes.get(prefix_key)
            if prefix is None:
                try:
                    key_part = _key_part(key)
                except Exception as error:
                    _dropped(key, value, error)
                    continue
                # KeyValue = key part + value tag + length 9 + double tag + 8 bytes
                prefix = tag_bytes + _varint(len(key_part) + 11) + key_part + b"\x12\x09\x21"
                if len(_double_prefixes) >= _CACHE_MAX:
                    _double_prefixes.clear()
                _double_prefixes[prefix_key] = prefix
            out.append(prefix)
            out.append(_pack_double(value))
        else:
            try:
                encoded = _delimited(tag_bytes, _key_value(key, value))
            except Exception as error:
                _dropped(key, value, error)
                continue
            out.append(encoded)


def _attributes_bytes(attributes: Mapping[Any, Any] | None, tag: int) -> bytes:
    """The tagged KeyValues of a mapping that may be None or empty."""
    if not attributes:
        return b""
    out: list[bytes] = []
    _attributes(attributes, tag, out)
    return b"".join(out)


def _flags_remote(context: Any) -> bool:
    """The SDK's test for the "is remote" flag bit (a SpanContext is a non-empty tuple)."""
    return bool(context and context.is_remote)


def _event(event: Any) -> bytes:
    """A Span.Event's body."""
    out: list[bytes] = []
    timestamp = event.timestamp
    if timestamp:
        out.append(_EVENT_TIME + _pack_fixed64(timestamp))
    name = event.name
    if name:
        out.append(_string(_EVENT_NAME, name))
    attributes = event.attributes
    if attributes:
        _attributes(attributes, _EVENT_ATTRS, out)
    dropped = event.dropped_attributes
    if dropped:
        out.append(_EVENT_DROPPED_ATTRS + _varint(min(dropped, _UINT32_MAX)))
    return b"".join(out)


def _link(link: Any) -> bytes:
    """A Span.Link's body; like the SDK, without the linked context's trace_state."""
    context = link.context
    out = [
        _LINK_TRACE_ID,
        context.trace_id.to_bytes(16, "big"),
        _LINK_SPAN_ID,
        context.span_id.to_bytes(8, "big"),
    ]
    attributes = link.attributes
    if attributes:
        _attributes(attributes, _LINK_ATTRS, out)
    dropped = link.dropped_attributes
    if dropped:
        out.append(_LINK_DROPPED_ATTRS + _varint(min(dropped, _UINT32_MAX)))
    out.append(_LINK_FLAGS_REMOTE if _flags_remote(context) else _LINK_FLAGS_LOCAL)
    return b"".join(out)


def _status(status: Any) -> bytes:
    """The whole Span.status field; present even for UNSET, as the SDK always sets it."""
    code = status.status_code
    description = status.description
    if not description:
        encoded = _STATUS_BY_CODE_ID.get(id(code))
        if encoded is not None:
            return encoded
    body = _delimited(_STATUS_MESSAGE, description.encode()) if description else b""
    if code.value:
        body += _STATUS_CODE + _varint(code.value)
    return _delimited(_SPAN_STATUS, body)


def _span(span: Any) -> bytes:
    """A Span's body, fields as the SDK's ``_encode_span`` sets them."""
    context = span.context
    if type(context) is SpanContext and _CONTEXT_IS_TUPLE:
        trace_id = context[0]  # a tuple item is ~50 ns cheaper than its property
        span_id = context[1]
        trace_state = context[4]
    else:
        trace_id = context.trace_id
        span_id = context.span_id
        trace_state = context.trace_state
    out = [_SPAN_TRACE_ID, trace_id.to_bytes(16, "big"), _SPAN_SPAN_ID, span_id.to_bytes(8, "big")]
    if trace_state:
        text = ",".join([f"{key}={value}" for key, value in trace_state.items()])
        if text:
            out.append(_delimited(_SPAN_TRACE_STATE, text.encode()))
    parent = span.parent
    flags = _SPAN_FLAGS_LOCAL
    if parent:  # as the SDK: any SpanContext, even an invalid one, is a parent
        out.append(_SPAN_PARENT_ID)
        if type(parent) is SpanContext and _CONTEXT_IS_TUPLE:
            out.append(parent[1].to_bytes(8, "big"))
            if parent[2]:
                flags = _SPAN_FLAGS_REMOTE
        else:
            out.append(parent.span_id.to_bytes(8, "big"))
            if parent.is_remote:
                flags = _SPAN_FLAGS_REMOTE
    name = span.name
    if name:
        out.append(_string(_SPAN_NAME, name))
    kind = span.kind
    kind_field = _KIND_BY_ID.get(id(kind))
    if kind_field is None:
        kind_field = _KIND_BY_VALUE.get(kind, b"")  # unknown: SPAN_KIND_UNSPECIFIED (0)
    out.append(kind_field)
    start = span.start_time
    end = span.end_time
    if start and end:
        out.append(_pack_times(_SPAN_START, start, _SPAN_END, end))
    else:
        if start:
            out.append(_SMALL_VARINTS[_SPAN_START] + _pack_fixed64(start))
        if end:
            out.append(_SMALL_VARINTS[_SPAN_END] + _pack_fixed64(end))
    attributes = span.attributes
    if attributes:
        _attributes(attributes, _SPAN_ATTRS, out)
    dropped = span.dropped_attributes
    if dropped:
        out.append(_SPAN_DROPPED_ATTRS + _varint(min(dropped, _UINT32_MAX)))
    events = span.events
    if events:
        for event in events:
            out.append(_delimited(_SPAN_EVENT, _event(event)))
    dropped = span.dropped_events
    if dropped:
        out.append(_SPAN_DROPPED_EVENTS + _varint(min(dropped, _UINT32_MAX)))
    links = span.links
    if links:
        for link in links:
            out.append(_delimited(_SPAN_LINK, _link(link)))
    dropped = span.dropped_links
    if dropped:
        out.append(_SPAN_DROPPED_LINKS + _varint(min(dropped, _UINT32_MAX)))
    status = span.status
    if status is not None:
        status_field = None
        if not status.description:
            status_field = _STATUS_BY_CODE_ID.get(id(status.status_code))
        out.append(status_field or _status(status))
    out.append(flags)
    return b"".join(out)


def _resource_fields(resource: Any) -> tuple[bytes, bytes]:
    """ResourceSpans' ``resource`` field (always present) and ``schema_url`` field, cached."""
    cached = _resources.get(id(resource))
    if cached is not None and cached[0] is resource:
        return cached[1], cached[2]
    block = _delimited(
        _RESOURCE_SPANS_RESOURCE, _attributes_bytes(resource.attributes, _RESOURCE_ATTRS)
    )
    schema_url = resource.schema_url
    schema = _delimited(_RESOURCE_SPANS_SCHEMA_URL, schema_url.encode()) if schema_url else b""
    if len(_resources) >= _BLOCK_CACHE_MAX:
        _resources.clear()
    _resources[id(resource)] = (resource, block, schema)  # the reference keeps the id unique
    return block, schema


def _scope_fields(scope: Any) -> tuple[bytes, bytes]:
    """ScopeSpans' ``scope`` field (always present, empty for no scope) and ``schema_url``."""
    if scope is None:
        return _SCOPE_SPANS_SCOPE + b"\x00", b""
    cached = _scopes.get(id(scope))
    if cached is not None and cached[0] is scope:
        return cached[1], cached[2]
    parts: list[bytes] = []
    if scope.name:
        parts.append(_delimited(_SCOPE_NAME, scope.name.encode()))
    if scope.version:
        parts.append(_delimited(_SCOPE_VERSION, scope.version.encode()))
    parts.append(_attributes_bytes(scope.attributes, _SCOPE_ATTRS))
    block = _delimited(_SCOPE_SPANS_SCOPE, b"".join(parts))
    schema_url = scope.schema_url
    schema = _delimited(_SCOPE_SPANS_SCHEMA_URL, schema_url.encode()) if schema_url else b""
    if len(_scopes) >= _BLOCK_CACHE_MAX:
        _scopes.clear()
    _scopes[id(scope)] = (scope, block, schema)
    return block, schema


def encode_spans(spans: Sequence[Any]) -> bytes:
    """Serialized opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest."""
    # Group as the SDK does: by resource, then by scope, with dicts keyed by the objects, so
    # equal objects share a group and the first one seen stands for it. Hashing a Resource dumps
    # its attributes to JSON, so that happens once per distinct pair of objects, not per span.
    groups: dict[Any, dict[Any, list[bytes]]] = {}
    by_identity: dict[tuple[int, int], list[bytes]] = {}
    last_resource: object = None
    last_scope: object = None
    encoded: list[bytes] = []
    for span in spans:
        resource = span.resource
        scope = span.instrumentation_scope or None
        if resource is not last_resource or scope is not last_scope or not by_identity:
            identity = (id(resource), id(scope))
            found = by_identity.get(identity)
            if found is None:
                found = groups.setdefault(resource, {}).setdefault(scope, [])
                by_identity[identity] = found
            encoded = found
            last_resource = resource
            last_scope = scope
        encoded.append(_span(span))

    out: list[bytes] = []
    for resource, scopes in groups.items():
        resource_block, resource_schema = _resource_fields(resource)
        resource_parts = [resource_block]
        for scope, encoded in scopes.items():
            scope_block, scope_schema = _scope_fields(scope)
            scope_parts = [scope_block]
            for body in encoded:
                scope_parts.append(_SCOPE_SPANS_SPAN)
                scope_parts.append(_varint(len(body)))
                scope_parts.append(body)
            scope_parts.append(scope_schema)
            resource_parts.append(_delimited(_RESOURCE_SPANS_SCOPE_SPANS, b"".join(scope_parts)))
        resource_parts.append(resource_schema)
        out.append(_delimited(_REQUEST_RESOURCE_SPANS, b"".join(resource_parts)))
    return b"".join(out)
