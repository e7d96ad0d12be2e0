"""A sentence saying what a workflow waits on, from its "waiting on" summary (`core.views.summary`): the
message of a wait that cannot end (time skipping's deadlock report, `durahub.testing`). Pure."""

from __future__ import annotations

from collections.abc import Collection

from durahub.core.views.summary import Summary


def _app(app_id: str, default: str) -> str:
    return app_id or default


def waiting_on(summary: Summary, app_id: str, apps_without_workers: Collection[str] = ()) -> str:
    """What keeps the instance from moving on, as one sentence. `app_id` is the instance's app (activities and
    children run there unless they name another); `apps_without_workers` are apps with work queued and no
    worker connected."""
    shown = f"workflow '{summary.instance_id}'" + (f" ({summary.workflow_name})" if summary.workflow_name else "")
    if summary.stall is not None:
        return f"{shown} is stalled: {summary.stall.description}"
    if summary.status not in ("RUNNING", "PENDING", "SUSPENDED"):
        return f"{shown} is {summary.status}"
    reasons: list[str] = []
    if summary.suspended or summary.status == "SUSPENDED":
        reasons.append("it is suspended (resume it)")
    for event in summary.events:
        timeout = "" if event.timeout_at_us is None else " (with a timeout)"
        reasons.append(f"external event '{event.name}'{timeout}")
    for child in summary.children:
        reasons.append(f"child workflow '{child.name}' (instance '{child.instance_id}')")
    for activity in summary.activities:
        target = _app(activity.app_id, app_id)
        missing = f": no worker of app '{target}' is connected" if target in apps_without_workers else ""
        reasons.append(f"activity '{activity.name}'{missing}")
    if not reasons and not summary.timers:
        if app_id in apps_without_workers:
            reasons.append(f"its next turn: no worker of app '{app_id}' is connected")
        elif summary.status == "PENDING":
            reasons.append("its start")
    if not reasons:
        return f"{shown} is {summary.status} and waits on nothing the engine can give it"
    return f"{shown} waits for " + "; ".join(reasons)
