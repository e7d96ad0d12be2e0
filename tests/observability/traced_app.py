"""A traced workflow app, run as its own process by the tracing tests (a global TracerProvider must not leak
into the test process): the official SDK with opentelemetry-sdk and opentelemetry-instrumentation-grpc, as a
user would set it up, exporting to the test's OTLP receiver.

    python traced_app.py SCENARIO OTLP_ENDPOINT RESULT_FILE [STOP_FILE]

Runs one scenario inside a client span `client-span`, writes {"instance_id", "trace_id"} to RESULT_FILE and
exits after flushing its spans. With STOP_FILE it only starts the workflow, then keeps its worker running until
that file exists (the test drives the rest).
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import timedelta

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

SCENARIO, ENDPOINT, RESULT = sys.argv[1], sys.argv[2], sys.argv[3]
STOP_FILE = sys.argv[4] if len(sys.argv) > 4 else None

provider = TracerProvider(resource=Resource.create({"service.name": "traced-app"}))
provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=ENDPOINT, insecure=True)))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("traced-app")

import dapr.ext.workflow as wf  # noqa: E402  (after the provider: the SDK instruments gRPC on import)


def work(ctx: wf.WorkflowActivityContext, value: int) -> int:
    with tracer.start_as_current_span("user-span") as span:
        span.set_attribute("value", value)
    return value + 1


def fail(ctx: wf.WorkflowActivityContext, value: int) -> int:
    with tracer.start_as_current_span("user-span"):
        raise ValueError("boom")


def chain(ctx: wf.DaprWorkflowContext, value: int):  # type: ignore[no-untyped-def]
    for _ in range(3):
        value = yield ctx.call_activity(work, input=value)
    return value


def fanout(ctx: wf.DaprWorkflowContext, value: int):  # type: ignore[no-untyped-def]
    results = yield wf.when_all([ctx.call_activity(work, input=i) for i in range(3)])
    return sum(results)


def child(ctx: wf.DaprWorkflowContext, value: int):  # type: ignore[no-untyped-def]
    return (yield ctx.call_activity(work, input=value))


def parent(ctx: wf.DaprWorkflowContext, value: int):  # type: ignore[no-untyped-def]
    return (yield ctx.call_child_workflow(child, input=value, instance_id=f"{ctx.instance_id}-child"))


def timer(ctx: wf.DaprWorkflowContext, value: int):  # type: ignore[no-untyped-def]
    yield ctx.create_timer(timedelta(milliseconds=200))
    return (yield ctx.call_activity(work, input=value))


def event(ctx: wf.DaprWorkflowContext, value: int):  # type: ignore[no-untyped-def]
    got = yield ctx.wait_for_external_event("go")
    return (yield ctx.call_activity(work, input=got))


def failing(ctx: wf.DaprWorkflowContext, value: int):  # type: ignore[no-untyped-def]
    return (yield ctx.call_activity(fail, input=value))


def looping(ctx: wf.DaprWorkflowContext, value: int):  # type: ignore[no-untyped-def]
    value = yield ctx.call_activity(work, input=value)
    if value < 2:
        ctx.continue_as_new(value)
        return None
    return value


def restartable(ctx: wf.DaprWorkflowContext, value: int):  # type: ignore[no-untyped-def]
    value = yield ctx.call_activity(work, input=value)
    got = yield ctx.wait_for_external_event("go")
    return (yield ctx.call_activity(work, input=value + got))


WORKFLOWS = {"chain": chain, "fanout": fanout, "child": parent, "timer": timer, "event": event,
             "failure": failing, "continue_as_new": looping, "restart": restartable}


def main() -> None:
    runtime = wf.WorkflowRuntime(host="127.0.0.1", port=os.environ["DAPR_GRPC_PORT"])
    for fn in (chain, fanout, child, parent, timer, event, failing, looping, restartable):
        runtime.register_workflow(fn)
    runtime.register_activity(work)
    runtime.register_activity(fail)
    runtime.start()
    client = wf.DaprWorkflowClient(host="127.0.0.1", port=os.environ["DAPR_GRPC_PORT"])
    instance_id = f"{SCENARIO}-{os.getpid()}"
    try:
        with tracer.start_as_current_span("client-span") as span:
            trace_id = f"{span.get_span_context().trace_id:032x}"
            client.schedule_new_workflow(WORKFLOWS[SCENARIO], input=0, instance_id=instance_id)
            if SCENARIO == "event":
                client.raise_workflow_event(instance_id, "go", data=5)
        with open(RESULT + ".tmp", "w") as out:
            json.dump({"instance_id": instance_id, "trace_id": trace_id}, out)
        os.replace(RESULT + ".tmp", RESULT)
        if STOP_FILE:
            while not os.path.exists(STOP_FILE):
                time.sleep(0.05)
        else:
            client.wait_for_workflow_completion(instance_id, timeout_in_seconds=60)
    finally:
        runtime.shutdown()
        provider.force_flush()
        provider.shutdown()


if __name__ == "__main__":
    main()
