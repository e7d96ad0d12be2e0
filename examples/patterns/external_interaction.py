"""External system interaction: a purchase order waits for an approval event or a timeout.

    python examples/patterns/external_interaction.py --cost 2500 --approver "Jane Doe"
    python examples/patterns/external_interaction.py --cost 2500 --reject
    python examples/patterns/external_interaction.py --cost 2500 --no-response --timeout 2
    python examples/patterns/external_interaction.py --cost 250      # auto-approved

Orders under $1000 are approved automatically. Others send an approval request and wait for
an ``approval_received`` event; this script plays the external approver and raises it with
DaprWorkflowClient.raise_workflow_event after --delay seconds (unless --no-response). If no
decision arrives within --timeout seconds, the order is cancelled. Prints the outcome.
The engine is found through DAPR_GRPC_PORT (default 50001).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from datetime import timedelta

import dapr.ext.workflow as wf

APPROVAL_EVENT = "approval_received"

runtime = wf.WorkflowRuntime()


@runtime.activity(name="send_approval_request")
def send_approval_request(ctx: wf.WorkflowActivityContext, order: dict) -> None:
    print(f"*** Sending approval request for order: {order['product']} ({order['quantity']}), "
          f"${order['cost']:.2f}; reply to instance {ctx.workflow_id}", flush=True)


@runtime.activity(name="place_order")
def place_order(ctx: wf.WorkflowActivityContext, order: dict) -> None:
    print(f"*** Placing order: {order['product']} ({order['quantity']})", flush=True)


@runtime.workflow(name="purchase_order_workflow")
def purchase_order_workflow(ctx: wf.DaprWorkflowContext, order: dict):
    if order["cost"] < 1000:
        return "Auto-approved"

    yield ctx.call_activity(send_approval_request, input=order)
    approval = ctx.wait_for_external_event(APPROVAL_EVENT)
    timeout = ctx.create_timer(timedelta(seconds=order["timeout_seconds"]))
    winner = yield wf.when_any([approval, timeout])
    if winner is not approval:
        return "Cancelled: no approval in time"

    decision = approval.get_result() or {}
    if not decision.get("approved", False):
        return f"Rejected by '{decision.get('approver', 'unknown')}'"
    yield ctx.call_activity(place_order, input=order)
    return f"Approved by '{decision.get('approver', 'unknown')}'"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cost", type=float, default=2500.0)
    parser.add_argument("--product", default="MyProduct")
    parser.add_argument("--quantity", type=int, default=1)
    parser.add_argument("--approver", default="Jane Doe")
    decision = parser.add_mutually_exclusive_group()
    decision.add_argument("--reject", action="store_true", help="the approver rejects the order")
    decision.add_argument("--no-response", action="store_true", help="nobody answers: the order times out")
    parser.add_argument("--delay", type=float, default=0.5, help="seconds before the approver answers")
    parser.add_argument("--timeout", type=float, default=30.0, help="approval timeout in seconds")
    args = parser.parse_args(argv)

    order = {"cost": args.cost, "product": args.product, "quantity": args.quantity,
             "timeout_seconds": args.timeout}
    runtime.start()
    client = wf.DaprWorkflowClient()
    instance_id = f"po-{uuid.uuid4().hex[:12]}"
    try:
        client.schedule_new_workflow(purchase_order_workflow, input=order, instance_id=instance_id)
        print(f"Purchase order workflow started: {instance_id}", flush=True)
        if args.cost >= 1000 and not args.no_response:
            time.sleep(args.delay)
            client.raise_workflow_event(
                instance_id, APPROVAL_EVENT, data={"approver": args.approver, "approved": not args.reject}
            )
            print(f"{args.approver} {'rejected' if args.reject else 'approved'} the order", flush=True)
        state = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=int(args.timeout + 60))
    finally:
        runtime.shutdown()
    status = state.runtime_status.name if state else "UNKNOWN"
    print(f"Workflow {instance_id}: {status}")
    if status != "COMPLETED":
        return 1
    print(f"Result: {json.loads(state.serialized_output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
