"""The benchmark workflows written with the official Dapr SDK, and the worker process that runs them.

    python -m bench.apps.dapr_app --port GRPC_PORT      # prints "WORKER-READY" once its stream is open

Imported by the driver only for the workflow names (the driver never registers them).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

import dapr.ext.workflow as wf

ORDER = "bench_order"
FANOUT = "bench_fanout"
CHAIN = "bench_chain"
WAIT = "bench_wait"


def noop(ctx: wf.WorkflowActivityContext, value: int) -> int:
    return value


def bench_order(ctx: wf.DaprWorkflowContext, value: int):
    # The order pattern: two activities in parallel (process + inventory), then one (confirmation).
    a, b = yield wf.when_all([ctx.call_activity(noop, input=1), ctx.call_activity(noop, input=2)])
    c = yield ctx.call_activity(noop, input=3)
    return a + b + c


def bench_fanout(ctx: wf.DaprWorkflowContext, n: int):
    results = yield wf.when_all([ctx.call_activity(noop, input=i) for i in range(n)])
    return len(results)


def bench_chain(ctx: wf.DaprWorkflowContext, n: int):
    total = 0
    for i in range(n):
        total += yield ctx.call_activity(noop, input=i)
    return total


def bench_wait(ctx: wf.DaprWorkflowContext, _: int):
    value = yield ctx.wait_for_external_event("go")
    return value


def build_runtime(port: str) -> wf.WorkflowRuntime:
    runtime = wf.WorkflowRuntime(host="127.0.0.1", port=port)
    runtime.register_activity(noop, name="noop")
    runtime.register_workflow(bench_order, name=ORDER)
    runtime.register_workflow(bench_fanout, name=FANOUT)
    runtime.register_workflow(bench_chain, name=CHAIN)
    runtime.register_workflow(bench_wait, name=WAIT)
    return runtime


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--port", required=True)
    args = p.parse_args(argv)
    runtime = build_runtime(args.port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    runtime.start()
    print("WORKER-READY", flush=True)
    stop.wait()
    runtime.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
