"""A worker process for the multi-process test: registers the mixed workload and serves one engine."""

from __future__ import annotations

import sys
import time
from datetime import timedelta

import dapr.ext.workflow as wf

port = sys.argv[1]
STEP_SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 0.05
rt = wf.WorkflowRuntime(host="127.0.0.1", port=port)


@rt.activity(name="mp_step")
def mp_step(ctx: wf.WorkflowActivityContext, x: int) -> int:
    time.sleep(STEP_SECONDS)
    # Tests count executions from these lines (one write per line: activities run on several threads).
    sys.stdout.write(f"STEP {ctx.workflow_id} {ctx.task_id}\n")
    sys.stdout.flush()
    return x + 1


@rt.workflow(name="mp_chain")
def mp_chain(ctx: wf.DaprWorkflowContext, n: int):
    for _ in range(3):
        n = yield ctx.call_activity(mp_step, input=n)
    return n


@rt.workflow(name="mp_fan")
def mp_fan(ctx: wf.DaprWorkflowContext, n: int):
    results = yield wf.when_all([ctx.call_activity(mp_step, input=i) for i in range(n)])
    return sum(results)


@rt.workflow(name="mp_timer")
def mp_timer(ctx: wf.DaprWorkflowContext, n: int):
    yield ctx.create_timer(timedelta(seconds=1))
    return (yield ctx.call_activity(mp_step, input=n))


@rt.workflow(name="mp_parent")
def mp_parent(ctx: wf.DaprWorkflowContext, n: int):
    return (yield ctx.call_child_workflow(mp_chain, input=n)) * 10


@rt.workflow(name="mp_event")
def mp_event(ctx: wf.DaprWorkflowContext, n: int):
    got = yield ctx.wait_for_external_event("go")
    return n + got


rt.start()
print("WORKER-READY", flush=True)
try:
    while True:
        time.sleep(1)
except KeyboardInterrupt:
    pass
finally:
    rt.shutdown()
