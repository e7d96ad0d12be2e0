"""Task chaining: three activities in sequence, each fed the previous result, with compensation.

    python examples/patterns/task_chaining.py            # 1 -> 2 -> 4 -> 16, prints [2, 4, 16]
    python examples/patterns/task_chaining.py --fail-at 2   # step 2 fails: compensation runs

The engine is found through DAPR_GRPC_PORT (default 50001), e.g. `durahub run -- python ...`.
Exits 0 when the workflow ends as expected (COMPLETED, or FAILED after compensating when
--fail-at is given).
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid

import dapr.ext.workflow as wf

runtime = wf.WorkflowRuntime()


@runtime.activity(name="chain_step1")
def step1(ctx: wf.WorkflowActivityContext, data: dict) -> int:
    print(f"Step 1: received {data['value']}", flush=True)
    _maybe_fail(1, data)
    return data["value"] + 1


@runtime.activity(name="chain_step2")
def step2(ctx: wf.WorkflowActivityContext, data: dict) -> int:
    print(f"Step 2: received {data['value']}", flush=True)
    _maybe_fail(2, data)
    return data["value"] * 2


@runtime.activity(name="chain_step3")
def step3(ctx: wf.WorkflowActivityContext, data: dict) -> int:
    print(f"Step 3: received {data['value']}", flush=True)
    _maybe_fail(3, data)
    return data["value"] ** 2


@runtime.activity(name="chain_compensate")
def compensate(ctx: wf.WorkflowActivityContext, info: dict) -> str:
    # Undo the completed steps, newest first.
    undone = list(reversed(info["completed"]))
    print(f"Compensating after error {info['error']!r}: undoing steps {undone}", flush=True)
    return f"undid steps {undone}"


def _maybe_fail(step: int, data: dict) -> None:
    if data.get("fail_at") == step:
        raise RuntimeError(f"step {step} failed on purpose")


@runtime.workflow(name="task_chain_workflow")
def task_chain_workflow(ctx: wf.DaprWorkflowContext, wf_input: dict):
    fail_at = wf_input.get("fail_at")
    results: list[int] = []
    try:
        value = wf_input["value"]
        for step in (step1, step2, step3):
            value = yield ctx.call_activity(step, input={"value": value, "fail_at": fail_at})
            results.append(value)
    except Exception as exc:
        completed = list(range(1, len(results) + 1))
        yield ctx.call_activity(compensate, input={"error": str(exc), "completed": completed})
        raise
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=int, default=1, help="starting value (default 1)")
    parser.add_argument("--fail-at", type=int, choices=(1, 2, 3), help="make this step fail")
    parser.add_argument("--timeout", type=int, default=60, help="seconds to wait for the result")
    args = parser.parse_args(argv)

    runtime.start()
    client = wf.DaprWorkflowClient()
    try:
        instance_id = client.schedule_new_workflow(
            task_chain_workflow,
            input={"value": args.input, "fail_at": args.fail_at},
            instance_id=f"chain-{uuid.uuid4().hex[:12]}",
        )
        state = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=args.timeout)
    finally:
        runtime.shutdown()
    status = state.runtime_status.name if state else "UNKNOWN"
    print(f"Workflow {instance_id}: {status}")
    if args.fail_at is None:
        print(f"Result: {json.dumps(json.loads(state.serialized_output))}")
        return 0 if status == "COMPLETED" else 1
    message = state.failure_details.message if state and state.failure_details else ""
    print(f"Failed as requested after compensation: {message}")
    return 0 if status == "FAILED" else 1


if __name__ == "__main__":
    sys.exit(main())
