"""OTLP's `ExportTraceServiceRequest` for a batch of the engine's spans, written in protobuf wire format
directly. The exporter's own encoder builds a protobuf object per span, attribute and value (about as much CPU
as the engine spends on the spans themselves); this writes the same message as bytes, with the resource and
scope encoded once. Spans of another resource or scope, or attribute values of other types, are left to the
SDK's encoder (`encode_request` returns None).

Field numbers are those of opentelemetry-proto's trace.proto and common.proto.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

_SMALL = [bytes((i,)) for i in range(128)]
_FIXED64 = struct.Struct("<Q").pack
_FIXED32 = struct.Struct("<I").pack
_DOUBLE = struct.Struct("<d").pack
_MASK64 = (1 << 64) - 1

# Span.flags: the parent's is-remote bit is known (and set when the parent is remote), as the SDK writes it.
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200


def _varint(n: int) -> bytes:
    if n < 128:
        return _SMALL[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field."""
    return tag + _varint(len(payload)) + payload


class UnsupportedValue(Exception):
    pass


def _any_value(value: Any) -> bytes:
    """An AnyValue: string 1, bool 2, int 3, double 4, bytes 7."""
    if isinstance(value, str):
        return _field(b"\x0a", value.encode())
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + _varint(value & _MASK64)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    raise UnsupportedValue(type(value).__name__)


_KEYS: dict[str, bytes] = {}


def _attributes(tag: bytes, attributes: Any) -> bytes:
    """Repeated KeyValue (key 1, value 2) as field `tag`."""
    if not attributes:
        return b""
    parts = []
    keys = _KEYS
    for key, value in attributes.items():
        encoded_key = keys.get(key)
        if encoded_key is None:
            encoded_key = keys[key] = _field(b"\x0a", key.encode())
        parts.append(_field(tag, encoded_key + _field(b"\x12", _any_value(value))))
    return b"".join(parts)


def encode_span(span: Any) -> bytes:
    """A Span message (trace.proto) for an SDK `ReadableSpan`."""
    context = span.context
    parent = span.parent
    parts = [b"\x0a\x10", context.trace_id.to_bytes(16, "big"), b"\x12\x08", context.span_id.to_bytes(8, "big")]
    trace_state = context.trace_state
    if trace_state:
        parts.append(_field(b"\x1a", ",".join(f"{k}={v}" for k, v in trace_state.items()).encode()))
    if parent is not None:
        parts += (b"\x22\x08", parent.span_id.to_bytes(8, "big"))
    parts += (_field(b"\x2a", span.name.encode()), b"\x30", _SMALL[span.kind.value + 1],
              b"\x39", _FIXED64(span.start_time), b"\x41", _FIXED64(span.end_time),
              _attributes(b"\x4a", span.attributes))
    for event in span.events:
        parts.append(_field(b"\x5a", b"\x09" + _FIXED64(event.timestamp) + _field(b"\x12", event.name.encode())
                            + _attributes(b"\x1a", event.attributes)))
    status = span.status
    code = status.status_code.value
    message = status.description
    parts.append(_field(b"\x7a", (_field(b"\x12", message.encode()) if message else b"")
                        + (b"\x18" + _SMALL[code] if code else b"")))
    flags = _HAS_IS_REMOTE | (_IS_REMOTE if parent is not None and parent.is_remote else 0)
    parts += (b"\x85\x01", _FIXED32(flags))
    return b"".join(parts)


class RequestEncoder:
    """Encodes batches of spans of one resource and instrumentation scope (the engine's)."""

    def __init__(self, resource: Any, scope: Any) -> None:
        from opentelemetry.exporter.otlp.proto.common._internal import (
            _encode_instrumentation_scope,
            _encode_resource,
        )

        self.resource = resource
        self.scope = scope
        self._resource = _field(b"\x0a", _encode_resource(resource).SerializeToString())
        self._resource_schema = _field(b"\x1a", resource.schema_url.encode()) if resource.schema_url else b""
        self._scope = _field(b"\x0a", _encode_instrumentation_scope(scope).SerializeToString())
        self._scope_schema = _field(b"\x1a", scope.schema_url.encode()) if scope.schema_url else b""

    def encode(self, spans: Sequence[Any]) -> bytes | None:
        """The serialized ExportTraceServiceRequest, or None when a span is not one this encoder writes."""
        resource, scope = self.resource, self.scope
        encoded = []
        try:
            for span in spans:
                if span.resource is not resource or span.instrumentation_scope is not scope:
                    return None
                encoded.append(_field(b"\x12", encode_span(span)))
        except UnsupportedValue:
            return None
        scope_spans = self._scope + b"".join(encoded) + self._scope_schema
        resource_spans = self._resource + _field(b"\x12", scope_spans) + self._resource_schema
        return _field(b"\x0a", resource_spans)

