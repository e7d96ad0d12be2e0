"""The engine's metrics: Dapr's `dapr_runtime_workflow_*` series (names, labels, status values and buckets as
daprd exports them) and durahub's own `durahub_*` series. Recording is a dict update; nothing is exported
until `/metrics` is scraped."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from durahub.observability.exposition import Counter, Family, Gauge, Histogram, render

# Dapr's default latency distribution, in milliseconds.
LATENCY_BUCKETS_MS = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16, 20, 25, 30, 40, 50, 65, 80, 100, 130, 160, 200, 250, 300, 400,
                      500, 650, 800, 1000, 2000, 5000, 10000, 20000, 50000, 100000)
# Payload size as a fraction of the largest message (0.95 and over stalls the instance).
PAYLOAD_RATIO_BUCKETS = (0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0, 1.5, 2.0)

# Label values of Dapr's series.
SUCCESS = "success"
FAILED = "failed"
TERMINATED = "terminated"
RECOVERABLE = "recoverable"
CREATE_WORKFLOW = "create_workflow"
GET_WORKFLOW = "get_workflow"
ADD_EVENT = "add_event"
PURGE_WORKFLOW = "purge_workflow"

_BASE = ("app_id", "namespace")


@dataclass
class EngineGauges:
    """What the engine and its store hold at scrape time."""

    instances: dict[str, int] = field(default_factory=dict)  # by status name
    stalled: dict[str, int] = field(default_factory=dict)  # by stall reason
    pending_activities: int = 0
    pending_timers: int = 0
    oldest_pending_seconds: float = 0.0
    workers: dict[str, int] = field(default_factory=dict)  # by app


def current_namespace() -> str:
    """The `namespace` label value as daprd sets it (`security.CurrentNamespace()`): the NAMESPACE variable,
    which Kubernetes deployments set on the sidecar, else "default"."""
    return os.environ.get("NAMESPACE", "default")


class WorkflowMetrics:
    def __init__(self, namespace: str | None = None) -> None:
        self.namespace = current_namespace() if namespace is None else namespace
        ms = LATENCY_BUCKETS_MS
        p = "dapr_runtime_workflow_"
        self.operation_count = Counter(p + "operation_count", "Workflow client operations, by outcome.",
                                       (*_BASE, "operation", "status"))
        self.operation_latency = Histogram(p + "operation_latency", "Latency of workflow client operations (ms).",
                                           (*_BASE, "operation", "status"), ms)
        self.execution_count = Counter(p + "execution_count", "Workflow executions that ended, by outcome.",
                                       (*_BASE, "workflow_name", "status"))
        self.execution_latency = Histogram(p + "execution_latency",
                                           "Time from a workflow execution's first run to its end (ms).",
                                           (*_BASE, "workflow_name", "status"), ms)
        self.scheduling_latency = Histogram(p + "scheduling_latency",
                                            "Time from a workflow's (scheduled) start to its first run (ms).",
                                            (*_BASE, "workflow_name"), ms)
        self.activity_operation_count = Counter(p + "activity_operation_count",
                                                "Activity tasks handed to workers, by outcome.",
                                                (*_BASE, "activity_name", "status"))
        self.activity_operation_latency = Histogram(p + "activity_operation_latency",
                                                    "Time an activity task waited for a worker (ms).",
                                                    (*_BASE, "activity_name", "status"), ms)
        self.activity_execution_count = Counter(p + "activity_execution_count", "Activity results, by outcome.",
                                                (*_BASE, "activity_name", "status"))
        self.activity_execution_latency = Histogram(p + "activity_execution_latency",
                                                    "Time from handing an activity to a worker to its result (ms).",
                                                    (*_BASE, "activity_name", "status"), ms)
        self.payload_ratio = Histogram(p + "payload_size_ratio",
                                       "Workflow work item size as a fraction of the largest message.",
                                       (*_BASE, "workflow_name"), PAYLOAD_RATIO_BUCKETS)
        self.activity_payload_ratio = Histogram(p + "activity_payload_size_ratio",
                                                "Activity work item size as a fraction of the largest message.",
                                                (*_BASE, "workflow_name", "activity_name"), PAYLOAD_RATIO_BUCKETS)
        # durahub's own.
        self.turn_latency = Histogram("durahub_turn_latency_ms", "Time a worker took to answer a workflow turn.",
                                      ("app_id",), ms)
        self.commit_latency = Histogram("durahub_store_commit_latency_ms", "Time to commit a turn's outcome.",
                                        (), ms)
        self.lease_takeovers = Counter("durahub_lease_takeovers_total",
                                       "Instances this engine took over after another engine process moved them.", ())
        self.instances = Gauge("durahub_instances", "Instances in the store, by status.", ("status",))
        self.stalled = Gauge("durahub_stalled_instances", "Stalled instances, by reason.", ("reason",))
        self.pending_activities = Gauge("durahub_pending_activities",
                                        "Activity tasks this engine holds that have no result yet.")
        self.pending_timers = Gauge("durahub_pending_timers", "Durable timers and delayed starts this engine waits on.")
        self.oldest_pending = Gauge("durahub_oldest_pending_work_age_seconds",
                                    "Age of the oldest work not done yet: a ready instance's inbox, or an activity.")
        self.workers = Gauge("durahub_connected_workers", "Connected work-item streams, by app.", ("app_id",))

    def families(self) -> list[Family]:
        return [self.operation_count, self.operation_latency, self.execution_count, self.execution_latency,
                self.scheduling_latency, self.activity_operation_count, self.activity_operation_latency,
                self.activity_execution_count, self.activity_execution_latency, self.payload_ratio,
                self.activity_payload_ratio, self.turn_latency, self.commit_latency, self.lease_takeovers,
                self.instances, self.stalled, self.pending_activities, self.pending_timers, self.oldest_pending,
                self.workers]

    def exposition(self, gauges: EngineGauges) -> str:
        self.instances.set_all(((status,), n) for status, n in gauges.instances.items())
        self.stalled.set_all(((reason,), n) for reason, n in gauges.stalled.items())
        self.pending_activities.set((), gauges.pending_activities)
        self.pending_timers.set((), gauges.pending_timers)
        self.oldest_pending.set((), gauges.oldest_pending_seconds)
        self.workers.set_all(((app,), n) for app, n in gauges.workers.items())
        return render(self.families())

    # -- recording (Dapr's series; latencies in milliseconds) -------------------------------------------

    def operation(self, app_id: str, operation: str, status: str, ms: float) -> None:
        labels = (app_id, self.namespace, operation, status)
        self.operation_count.inc(labels)
        if ms > 0:  # as daprd: a zero elapsed time is counted but not observed
            self.operation_latency.observe(labels, ms)

    def execution(self, app_id: str, workflow: str, status: str, ms: float) -> None:
        labels = (app_id, self.namespace, workflow, status)
        self.execution_count.inc(labels)
        if ms > 0:
            self.execution_latency.observe(labels, ms)

    def scheduling(self, app_id: str, workflow: str, ms: float) -> None:
        if ms > 0:
            self.scheduling_latency.observe((app_id, self.namespace, workflow), ms)

    def activity_operation(self, app_id: str, activity: str, status: str, ms: float) -> None:
        labels = (app_id, self.namespace, activity, status)
        self.activity_operation_count.inc(labels)
        if ms > 0:
            self.activity_operation_latency.observe(labels, ms)

    def activity_execution(self, app_id: str, activity: str, status: str, ms: float) -> None:
        labels = (app_id, self.namespace, activity, status)
        self.activity_execution_count.inc(labels)
        if ms > 0:
            self.activity_execution_latency.observe(labels, ms)
