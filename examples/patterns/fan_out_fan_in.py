"""Fan-out/fan-in: process a batch of work items in parallel, then aggregate the results.

    python examples/patterns/fan_out_fan_in.py --items 5 --item-seconds 1

Each item i (1..N) takes --item-seconds and yields i * 2; the sum, N * (N + 1), is reported by
a final activity. Because the items run in parallel the whole batch takes about one item's
time, not N of them. The engine is found through DAPR_GRPC_PORT (default 50001).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid

import dapr.ext.workflow as wf

# Sync activities run on the worker's thread pool: make it big enough for a batch to run side by side.
runtime = wf.WorkflowRuntime(maximum_thread_pool_workers=32)


@runtime.activity(name="get_work_batch")
def get_work_batch(ctx: wf.WorkflowActivityContext, spec: dict) -> list[dict]:
    return [{"item": i + 1, "seconds": spec["item_seconds"]} for i in range(spec["items"])]


@runtime.activity(name="process_work_item")
def process_work_item(ctx: wf.WorkflowActivityContext, work: dict) -> int:
    print(f"Processing work item {work['item']}", flush=True)
    time.sleep(work["seconds"])
    return work["item"] * 2


@runtime.activity(name="process_results")
def process_results(ctx: wf.WorkflowActivityContext, total: int) -> int:
    print(f"Final result: {total}", flush=True)
    return total


@runtime.workflow(name="batch_processing_workflow")
def batch_processing_workflow(ctx: wf.DaprWorkflowContext, spec: dict):
    batch = yield ctx.call_activity(get_work_batch, input=spec)
    # Fan out: schedule every item before waiting for any of them.
    outputs = yield wf.when_all([ctx.call_activity(process_work_item, input=work) for work in batch])
    total = sum(outputs)  # fan in
    yield ctx.call_activity(process_results, input=total)
    return {"items": len(batch), "outputs": outputs, "total": total}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=5, help="batch size (default 5)")
    parser.add_argument("--item-seconds", type=float, default=1.0, help="work per item (default 1 s)")
    parser.add_argument("--timeout", type=int, default=120, help="seconds to wait for the result")
    args = parser.parse_args(argv)
    if args.items < 1:
        parser.error("--items must be at least 1")

    runtime.start()
    client = wf.DaprWorkflowClient()
    t0 = time.monotonic()
    try:
        instance_id = client.schedule_new_workflow(
            batch_processing_workflow,
            input={"items": args.items, "item_seconds": args.item_seconds},
            instance_id=f"fanout-{uuid.uuid4().hex[:12]}",
        )
        state = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=args.timeout)
    finally:
        runtime.shutdown()
    elapsed = time.monotonic() - t0
    status = state.runtime_status.name if state else "UNKNOWN"
    print(f"Workflow {instance_id}: {status} in {elapsed:.2f}s")
    if status != "COMPLETED":
        return 1
    print(f"Result: {json.dumps(json.loads(state.serialized_output))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
