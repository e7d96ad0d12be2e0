"""Monitor: an eternal workflow that checks a job's health, alerts when it turns unhealthy, sleeps,
and starts over with continue-as-new (fresh history each round) instead of looping.

    python examples/patterns/monitor.py --pattern healthy,unhealthy,unhealthy,healthy

Each check reads the next entry of --pattern (a stand-in for polling a real status endpoint).
Healthy checks sleep --healthy-interval, unhealthy ones --unhealthy-interval (shorter). An alert
is sent when the job goes from healthy to unhealthy. The monitor stops cleanly after
--max-checks checks (default: the length of the pattern) and returns a summary; Ctrl+C
terminates it instead. The engine is found through DAPR_GRPC_PORT (default 50001).
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from datetime import timedelta

import dapr.ext.workflow as wf

runtime = wf.WorkflowRuntime()


@runtime.activity(name="check_status")
def check_status(ctx: wf.WorkflowActivityContext, probe: dict) -> str:
    pattern = probe["pattern"]
    return pattern[probe["check"] % len(pattern)]


@runtime.activity(name="send_alert")
def send_alert(ctx: wf.WorkflowActivityContext, message: str) -> None:
    print(f"*** Alert: {message}", flush=True)


@runtime.workflow(name="status_monitor_workflow")
def status_monitor_workflow(ctx: wf.DaprWorkflowContext, job: dict):
    status = yield ctx.call_activity(check_status, input={"pattern": job["pattern"], "check": job["checks"]})
    job = {**job, "checks": job["checks"] + 1, "history": [*job["history"], status]}
    if not ctx.is_replaying:
        print(f"Job '{job['job_id']}' check {job['checks']}: {status}", flush=True)

    if status == "healthy":
        job["is_healthy"] = True
        interval = job["healthy_interval"]
    else:
        if job["is_healthy"]:
            job["is_healthy"] = False
            job["alerts"] += 1
            yield ctx.call_activity(send_alert, input=f"Job '{job['job_id']}' is unhealthy!")
        interval = job["unhealthy_interval"]

    if job["checks"] >= job["max_checks"]:
        return {k: job[k] for k in ("job_id", "checks", "alerts", "history", "is_healthy")}

    yield ctx.create_timer(timedelta(seconds=interval))
    ctx.continue_as_new(job)  # restart from the top with the updated state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job-id", default="job-1")
    parser.add_argument("--pattern", default="healthy,unhealthy,unhealthy,healthy,unhealthy",
                        help="comma-separated statuses the checks see, in order")
    parser.add_argument("--max-checks", type=int, help="stop after this many checks (default: len(pattern))")
    parser.add_argument("--healthy-interval", type=float, default=2.0, help="seconds between healthy checks")
    parser.add_argument("--unhealthy-interval", type=float, default=0.5, help="seconds between unhealthy checks")
    parser.add_argument("--timeout", type=int, default=120, help="seconds to wait for the monitor to stop")
    args = parser.parse_args(argv)
    pattern = [p.strip() for p in args.pattern.split(",") if p.strip()]
    if not pattern or any(p not in ("healthy", "unhealthy") for p in pattern):
        parser.error("--pattern must list 'healthy' / 'unhealthy'")

    job = {
        "job_id": args.job_id,
        "pattern": pattern,
        "max_checks": args.max_checks or len(pattern),
        "healthy_interval": args.healthy_interval,
        "unhealthy_interval": args.unhealthy_interval,
        "checks": 0,
        "alerts": 0,
        "history": [],
        "is_healthy": True,
    }
    runtime.start()
    client = wf.DaprWorkflowClient()
    instance_id = f"monitor-{args.job_id}-{uuid.uuid4().hex[:8]}"
    try:
        client.schedule_new_workflow(status_monitor_workflow, input=job, instance_id=instance_id)
        state = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=args.timeout)
    except KeyboardInterrupt:
        client.terminate_workflow(instance_id)
        print(f"Monitor {instance_id} terminated")
        return 130
    finally:
        runtime.shutdown()
    status = state.runtime_status.name if state else "UNKNOWN"
    print(f"Monitor {instance_id}: {status}")
    if status != "COMPLETED":
        return 1
    print(f"Result: {json.dumps(json.loads(state.serialized_output))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
