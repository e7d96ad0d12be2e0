"""The records `dapr workflow list` and `dapr workflow history` print, built from durahub's API answers.

Field names, column headings and the derived values (PLAY, ELAPSED, DETAILS, ATTRS) follow dapr/cli
`pkg/workflow/list.go` and `pkg/workflow/history.go`, so tables and `-o json|yaml` read the same as dapr's.
Pure functions of the API's JSON (`/durahub/v1/instances`, `/durahub/v1/instances/{id}`) and `now`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from durahub.cli_workflow.timefmt import human_age, humanize_elapsed, parse_api_time, rfc3339

Record = dict[str, Any]


@dataclass(frozen=True)
class Column:
    heading: str
    key: str


LIST_SHORT = (Column("NAME", "name"), Column("ID", "instanceID"), Column("STATUS", "runtimeStatus"),
              Column("CUSTOM STATUS", "customStatus"), Column("AGE", "age"))
LIST_WIDE = (Column("NAMESPACE", "namespace"), Column("APP ID", "appID"), Column("NAME", "name"),
             Column("INSTANCE ID", "instanceID"), Column("CREATED", "created"), Column("LAST UPDATE", "lastUpdate"),
             Column("STATUS", "runtimeStatus"), Column("CUSTOM STATUS", "customStatus"),
             Column("FAILURE MESSAGE", "failureMessage"))
HISTORY_SHORT = (Column("TYPE", "type"), Column("NAME", "name"), Column("EVENTID", "eventId"),
                 Column("ELAPSED", "elapsed"), Column("STATUS", "status"), Column("DETAILS", "details"))
HISTORY_WIDE = (Column("PLAY", "play"), Column("TYPE", "type"), Column("NAME", "name"), Column("EVENTID", "eventId"),
                Column("TIMESTAMP", "timestamp"), Column("ELAPSED", "elapsed"), Column("STATUS", "status"),
                Column("DETAILS", "details"), Column("ROUTER", "router"), Column("EXECUTION_ID", "executionId"),
                Column("ATTRS", "attrs"))

# History event kinds (protobuf oneof names) as dapr names them in the TYPE column.
EVENT_TYPES = {
    "executionStarted": "ExecutionStarted", "executionCompleted": "ExecutionCompleted",
    "executionTerminated": "ExecutionTerminated", "taskScheduled": "TaskScheduled", "taskCompleted": "TaskCompleted",
    "taskFailed": "TaskFailed", "childWorkflowInstanceCreated": "ChildWorkflowCreated",
    "childWorkflowInstanceCompleted": "ChildWorkflowCompleted", "childWorkflowInstanceFailed": "ChildWorkflowFailed",
    "timerCreated": "TimerCreated", "timerFired": "TimerFired", "workflowStarted": "WorkflowStarted",
    "workflowCompleted": "WorkflowCompleted", "eventSent": "EventSent", "eventRaised": "EventRaised",
    "continueAsNew": "ContinueAsNew", "executionSuspended": "ExecutionSuspended",
    "executionResumed": "ExecutionResumed", "executionStalled": "ExecutionStalled",
    "detachedWorkflowInstanceCreated": "DetachedWorkflowCreated",
}
_EVENT_STATUS = {"taskFailed": "FAILED", "executionTerminated": "TERMINATED", "executionSuspended": "SUSPENDED",
                 "executionResumed": "RESUMED", "executionStalled": "STALLED"}
_NAMED = ("taskScheduled", "childWorkflowInstanceCreated", "timerCreated", "eventRaised", "eventSent",
          "executionStarted")
_TIMER_ORIGINS = (("createTimer", ""), ("externalEvent", "name"), ("activityRetry", "taskExecutionId"),
                  ("childWorkflowRetry", "instanceId"))


def one_line(text: str) -> str:
    return text.replace("\n", "").replace("\r", "")


# -- list -----------------------------------------------------------------------------------------------


def list_wide(instance: Record, namespace: str) -> Record:
    failure = instance.get("failure") or {}
    return {
        "namespace": namespace,
        "appID": instance.get("app_id", ""),
        "name": instance["workflow_name"],
        "instanceID": instance["instance_id"],
        "created": rfc3339(parse_api_time(instance["created_at"])),
        "lastUpdate": rfc3339(parse_api_time(instance["last_updated_at"])),
        "runtimeStatus": instance["status"],
        "customStatus": instance.get("custom_status") or "",
        "failureMessage": one_line(failure.get("error_message") or ""),
    }


def list_short(instance: Record, now: datetime) -> Record:
    age = (now - parse_api_time(instance["created_at"])).total_seconds()
    return {
        "name": instance["workflow_name"],
        "instanceID": instance["instance_id"],
        "runtimeStatus": instance["status"],
        "customStatus": instance.get("custom_status") or "",
        "age": human_age(age),
    }


# -- history --------------------------------------------------------------------------------------------


def history_wide(events: list[Record], namespace: str, app_id: str, now: datetime) -> list[Record]:
    """One record per event: PLAY counts the turns (one per workflowStarted event), ELAPSED is the time since
    the previous event (the first row's is the history's age)."""
    rows: list[Record] = []
    play = 0
    first = previous = parse_api_time(events[0]["timestamp"]) if events else now
    for event in events:
        kind = event["kind"]
        details: Record = event.get("details") or {}
        stamp = parse_api_time(event["timestamp"])
        if kind == "workflowStarted":
            play += 1
        elapsed = ("Age:" + humanize_elapsed((now - stamp).total_seconds()) if not rows
                   else humanize_elapsed((stamp - previous).total_seconds()))
        previous = stamp
        row: Record = {
            "namespace": namespace,
            "appID": app_id,
            "play": play,
            "type": EVENT_TYPES.get(kind, "Unknown"),
            "name": (details.get("name") or None) if kind in _NAMED else None,
            "eventId": event["event_id"] if event["event_id"] > 0 else None,
            "timestamp": rfc3339(stamp),
            "elapsed": elapsed,
            "status": _event_status(kind, details),
            "details": _event_details(kind, details, stamp, first),
            "router": None,  # durahub serves one app; no event crosses apps yet
            "executionId": _execution_id(kind, details),
            "attrs": _attrs(kind, details),
        }
        if kind in ("taskScheduled", "timerCreated") and row["eventId"] is None:
            row["eventId"] = 0
        rows.append(row)
    return rows


def history_short(wide: list[Record]) -> list[Record]:
    return [{"type": r["type"], "name": r["name"] or "-", "eventId": "-" if r["eventId"] is None else str(r["eventId"]),
             "elapsed": r["elapsed"], "status": r["status"], "details": r["details"] or "-"} for r in wide]


def without_empty(record: Record, keys: tuple[str, ...]) -> Record:
    """`record` without the listed keys whose value is None (Go's `omitempty`)."""
    return {k: v for k, v in record.items() if not (k in keys and v is None)}


HISTORY_OMIT_EMPTY = ("namespace", "eventId", "router", "executionId", "attrs")


def _event_status(kind: str, details: Record) -> str:
    if kind == "executionCompleted":
        return str(details.get("workflowStatus", "ORCHESTRATION_STATUS_RUNNING")).removeprefix("ORCHESTRATION_STATUS_")
    return _EVENT_STATUS.get(kind, "RUNNING")


def _event_details(kind: str, details: Record, stamp: datetime, first: datetime) -> str | None:
    rerun = (details.get("rerunParentInstanceInfo") or {}).get("instanceID")
    if kind in ("taskScheduled", "childWorkflowInstanceCreated"):
        return f"rerunParent={rerun}" if rerun else None
    if kind == "timerCreated":
        text = f"fireAt={_stamp(details.get('fireAt'))}"
        if rerun:
            text += f",rerunParent={rerun}"
        origin = _timer_origin(details)
        if origin is not None:
            text += ",origin=" + (f"{origin[0]}({origin[2]})" if origin[2] else origin[0])
        return text
    if kind == "eventRaised":
        return f"event={details.get('name', '')}"
    if kind == "eventSent":
        return f"event={details.get('name', '')}->{details.get('instanceId', '')}"
    if kind == "executionStarted":
        parent = ((details.get("parentInstance") or {}).get("workflowInstance") or {}).get("instanceId")
        return "workflowStart" + (f",parent={parent}" if parent else "")
    if kind == "workflowStarted":
        return "replay"
    if kind in ("taskCompleted", "childWorkflowInstanceCompleted"):
        return f"eventId={details.get('taskScheduledId', 0)}"
    if kind == "executionCompleted":
        return f"execDuration={humanize_elapsed((stamp - first).total_seconds())}"
    return None


def _execution_id(kind: str, details: Record) -> str | None:
    if kind == "executionStarted":
        return (details.get("workflowInstance") or {}).get("executionId") or None
    if kind in ("taskScheduled", "taskCompleted", "taskFailed"):
        return details.get("taskExecutionId") or None
    return None


def _timer_origin(details: Record) -> tuple[str, str, str] | None:
    """(origin kind, attribute name, attribute value) of a timerCreated event."""
    for origin, field in _TIMER_ORIGINS:
        if origin in details:
            value = str((details[origin] or {}).get(field, "")) if field else ""
            attr = {"name": "eventName", "taskExecutionId": "taskExecId", "instanceId": "instanceId"}.get(field, "")
            return origin, attr, value
    return None


def _attrs(kind: str, details: Record) -> str | None:
    pairs: list[tuple[str, str]] = []

    def add(key: str, value: object) -> None:
        if value is not None and value != "":
            pairs.append((key, str(value)))

    failure: Record = details.get("failureDetails") or {}
    if kind == "executionStarted":
        add("input", trim(details.get("input"), 120))
        add("tags", _flat_tags(details.get("tags") or {}, 6))
    elif kind == "executionStalled":
        add("reason", details.get("reason"))
        add("description", trim(details.get("description"), 120))
    elif kind in ("taskScheduled", "childWorkflowInstanceCreated"):
        add("input", trim(details.get("input"), 120))
    elif kind == "taskCompleted":
        add("scheduledId", details.get("taskScheduledId", 0))
        add("output", trim(details.get("result"), 120))
    elif kind == "workflowStarted":
        version: Record = details.get("version") or {}
        add("versionName", version.get("name"))
        add("versionPatches", ",".join(version.get("patches") or []))
    elif kind == "childWorkflowInstanceCompleted":
        add("output", trim(details.get("result"), 120))
    elif kind == "taskFailed":
        add("scheduledId", details.get("taskScheduledId", 0))
        add("errorType", failure.get("errorType"))
        add("errorMsg", trim(failure.get("errorMessage"), 160))
        add("nonRetriable", "true" if failure.get("isNonRetriable") else None)
    elif kind == "timerCreated":
        add("timerName", details.get("name"))
        add("fireAt", _stamp(details.get("fireAt")))
        origin = _timer_origin(details)
        if origin is not None:
            add("origin", origin[0])
            if origin[1]:
                add(origin[1], origin[2])
    elif kind == "timerFired":
        add("timerId", details.get("timerId", 0))
        add("fireAt", _stamp(details.get("fireAt")))
    elif kind in ("eventRaised", "eventSent"):
        add("eventName", details.get("name"))
        add("payload", trim(details.get("input"), 120))
        if kind == "eventSent":
            add("targetInstance", details.get("instanceId"))
    elif kind == "executionCompleted":
        add("output", trim(details.get("result"), 160))
        add("failureType", failure.get("errorType"))
        add("failureMessage", trim(failure.get("errorMessage"), 160))
    return ";".join(f"{k}={v}" for k, v in pairs) or None


def trim(value: object, limit: int) -> str | None:
    """A payload for a table cell: a JSON string literal unquoted, cut to `limit` characters."""
    if value is None:
        return None
    text = str(value)
    try:
        decoded = json.loads(text)
    except ValueError:
        decoded = None
    if isinstance(decoded, str):
        text = decoded
    return text if len(text) <= limit else text[:limit] + "…"


def _flat_tags(tags: dict[str, str], most: int) -> str:
    parts = sorted(f"{k}={v}" for k, v in list(tags.items())[:most])
    return ",".join(parts) + (",…" if len(tags) > most else "")


def _stamp(value: object) -> str:
    return rfc3339(parse_api_time(str(value))) if value else ""
