"""Where the engine's spans go: the SDK's BatchSpanProcessor per configured endpoint (OTLP over gRPC or HTTP,
Zipkin), fed by `WorkflowTracer`. Needs the `otel` extra (`opentelemetry-sdk` and an exporter);
`make_tracer` returns None when tracing is not configured or the packages are missing, and the engine then
skips every span step.

Spans are queued by the engine's thread and encoded and sent by the processor's own thread, in batches of up
to 2,048 (the SDK's default is 512, a gRPC call per 512 spans); the `OTEL_BSP_*` variables still override.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from durahub.observability.otlp_wire import RequestEncoder
from durahub.observability.tracing import TRACER_NAME, WorkflowTracer

log = logging.getLogger("durahub.tracing")

BATCH_SIZE = 2048
QUEUE_SIZE = 16384


def _otlp_grpc_exporter(endpoint: str, encoder: RequestEncoder) -> Any:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    class WireEncodingExporter(OTLPSpanExporter):
        """The SDK's exporter (its channel, retries and timeouts), with the request written by `otlp_wire`."""

        def _translate_data(self, data: Sequence[Any]) -> Any:
            encoded = encoder.encode(data)
            if encoded is None:
                return super()._translate_data(data)
            return ExportTraceServiceRequest.FromString(encoded)

    insecure = not endpoint.startswith("https://")
    return WireEncodingExporter(endpoint=endpoint.removeprefix("http://").removeprefix("https://"), insecure=insecure)


def _otlp_http_exporter(endpoint: str) -> Any:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    url = endpoint if "://" in endpoint else f"http://{endpoint}"
    if url.rstrip("/").count("/") <= 2:  # no path: the collector's standard one
        url = url.rstrip("/") + "/v1/traces"
    return OTLPSpanExporter(endpoint=url)


def _batch_processor(exporter: Any) -> Any:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    batch = None if os.environ.get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") else BATCH_SIZE
    queue = None if os.environ.get("OTEL_BSP_MAX_QUEUE_SIZE") else max(QUEUE_SIZE, batch or 0)
    return BatchSpanProcessor(exporter, max_queue_size=queue, max_export_batch_size=batch)


def _sampler() -> Any:
    """The sampler `OTEL_TRACES_SAMPLER` names, or None for the default (parent-based, always on), which the
    tracer decides without a call."""
    if not os.environ.get("OTEL_TRACES_SAMPLER"):
        return None
    from opentelemetry.sdk.trace.sampling import _get_from_env_or_default

    return _get_from_env_or_default()


def make_tracer(app_id: str, otlp_endpoint: str | None = None, zipkin_endpoint: str | None = None,
                otlp_protocol: str | None = None) -> WorkflowTracer | None:
    """A tracer exporting to the given endpoints (or the standard `OTEL_EXPORTER_OTLP_*` variables), or None
    when no endpoint is configured or the OpenTelemetry SDK is not installed."""
    env_endpoint = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                    or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
    otlp_endpoint = otlp_endpoint or env_endpoint
    if not otlp_endpoint and not zipkin_endpoint:
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    except ImportError:
        log.warning("event=tracing_unavailable reason=%s", "the OpenTelemetry SDK is not installed: pip install "
                    "'durahub[otel]'")
        return None

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or app_id})
    scope = InstrumentationScope(TRACER_NAME)
    processors = []
    try:
        if otlp_endpoint:
            protocol = otlp_protocol or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") \
                or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "grpc"
            exporter = _otlp_http_exporter(otlp_endpoint) if protocol.startswith("http") \
                else _otlp_grpc_exporter(otlp_endpoint, RequestEncoder(resource, scope))
            processors.append(_batch_processor(exporter))
        if zipkin_endpoint:
            from opentelemetry.exporter.zipkin.json import ZipkinExporter

            processors.append(_batch_processor(ZipkinExporter(endpoint=zipkin_endpoint)))
    except ImportError as exc:
        for processor in processors:
            processor.shutdown()
        log.warning("event=tracing_unavailable reason=%r", f"exporter not installed: {exc}")
        return None
    log.info("event=tracing_enabled otlp=%s zipkin=%s", otlp_endpoint or "", zipkin_endpoint or "")
    return WorkflowTracer(processors, resource, scope, _sampler())
