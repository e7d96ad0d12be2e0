"""A minimal OTLP/gRPC trace collector for the traced bench column: accepts every export, counts the spans and
drops them, so tracing-on is measured against a receiver that costs the engine nothing but the export itself.

    python -m bench.tools.otlp_sink --count-file FILE   # prints "SINK-READY <port>", writes the span count on SIGTERM

Runs in the durahub virtualenv (opentelemetry-proto comes with the otel test extra).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


class CountingTraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans = 0
        self._lock = threading.Lock()

    def Export(self, request: Any, context: Any) -> Any:
        n = sum(len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans)
        with self._lock:
            self.spans += n
        return trace_service_pb2.ExportTraceServiceResponse()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count-file", required=True, help="where the number of spans received is written on exit")
    args = p.parse_args(argv)
    service = CountingTraceService()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(service, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    print(f"SINK-READY {port}", flush=True)
    done.wait()
    server.stop(5).wait()
    Path(args.count_file).write_text(str(service.spans))
    return 0


if __name__ == "__main__":
    sys.exit(main())
