"""A caller's W3C trace context is the parent of the workflow it starts, whichever API starts it: Dapr's HTTP
API, Dapr's runtime gRPC API (`StartWorkflowBeta1`, older SDKs) and durahub's `/durahub/v1/instances`."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import grpc
import httpx
import pytest

pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("opentelemetry.proto")

from dapr.proto.runtime.v1 import dapr_pb2_grpc  # noqa: E402
from dapr.proto.runtime.v1 import workflow_pb2 as wpb  # noqa: E402

from testsupport.otlp import OtlpReceiver, ReceivedSpan  # noqa: E402
from testsupport.sdk import new_id  # noqa: E402
from testsupport.server import DurahubServer  # noqa: E402

WORKFLOW = "nobody_runs_this"  # no worker: the create span is all there is to see


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    r = OtlpReceiver().start()
    yield r
    r.stop()


@pytest.fixture
def traced_server(server_factory: Callable[..., DurahubServer], receiver: OtlpReceiver,
                  monkeypatch: pytest.MonkeyPatch) -> DurahubServer:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    return server_factory(extra_args=["--otlp-endpoint", receiver.endpoint])


def caller() -> tuple[str, str, str]:
    """(traceparent, trace id, span id) of a made-up sampled caller."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def create_span(receiver: OtlpReceiver, trace_id: str, instance_id: str) -> ReceivedSpan:
    def found(spans: list[ReceivedSpan]) -> bool:
        return any(s.trace_id == trace_id and s.name == f"create_orchestration||{WORKFLOW}" for s in spans)

    [span] = [s for s in receiver.wait_for(found) if s.trace_id == trace_id
              and s.name == f"create_orchestration||{WORKFLOW}"]
    assert span.attributes["durabletask.task.instance_id"] == instance_id
    return span


def start_over_dapr_http(server: DurahubServer, instance_id: str, traceparent: str) -> None:
    r = httpx.post(f"{server.http_url}/v1.0/workflows/dapr/{WORKFLOW}/start?instanceID={instance_id}", json=1,
                   headers={"traceparent": traceparent}, timeout=10)
    assert r.status_code == 202, r.text


def start_over_durahub_http(server: DurahubServer, instance_id: str, traceparent: str) -> None:
    r = httpx.post(f"{server.http_url}/durahub/v1/instances", json={"workflow_name": WORKFLOW,
                   "instance_id": instance_id, "input": "1"}, headers={"traceparent": traceparent}, timeout=10)
    assert r.status_code == 202, r.text


def start_over_dapr_grpc(server: DurahubServer, instance_id: str, traceparent: str) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        dapr_pb2_grpc.DaprStub(channel).StartWorkflowBeta1(
            wpb.StartWorkflowRequest(instance_id=instance_id, workflow_component="dapr", workflow_name=WORKFLOW,
                                     input=b"1"),
            metadata=[("traceparent", traceparent)], timeout=10)


@pytest.mark.parametrize("start", [start_over_dapr_http, start_over_durahub_http, start_over_dapr_grpc],
                         ids=["dapr-http", "durahub-v1", "dapr-grpc"])
def test_start_joins_the_callers_trace(traced_server: DurahubServer, receiver: OtlpReceiver,
                                       start: Callable[[DurahubServer, str, str], None]) -> None:
    traceparent, trace_id, span_id = caller()
    instance_id = new_id("traced")
    start(traced_server, instance_id, traceparent)
    assert create_span(receiver, trace_id, instance_id).parent_span_id == span_id
