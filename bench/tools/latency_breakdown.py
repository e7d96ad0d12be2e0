"""Where one order workflow's latency goes: engine, SDK worker, client.

    .venv19/bin/python -m bench.tools.latency_breakdown [--n 200] [--db sqlite|postgres] [--synchronous full|normal]

Runs the latency workload (sequential start-and-wait of the order workflow: two activities in parallel, then
one) against `durahub serve` with the SDK worker in its own process, then reads each instance's history. The
engine stamps every event with the moment it saw it: `workflowStarted` when it prepares a turn, the turn's
actions (`taskScheduled`, `executionCompleted`) when the worker's answer arrives, `taskCompleted` when an
activity's result arrives. So the gaps between events split the wall time into:

  engine: create -> first turn   StartInstance committed, first turn prepared and sent
  worker turn (x3)               turn on the stream -> the worker's CompleteOrchestratorTask arrives
  activity round trip (x2)       turn answer -> activity result arrives (engine commits the turn and dispatches;
                                 the worker runs the no-op activity and calls CompleteActivityTask)
  engine: result -> next turn (x2)  result committed, next turn prepared and sent
  client + tail                  the rest: StartInstance/WaitForInstanceCompletion round trips, the final
                                 commit, the SDK client's own work

Prints the median of each segment. Engine, worker and client share the machine's clock.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc

from bench.apps.dapr_app import ORDER
from bench.systems.durahub import Deployment
from durahub.protos import pb, taskhub_grpc

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def _us(ts: object) -> int:
    return ts.ToMicroseconds()  # type: ignore[attr-defined]


def segments(history: list[pb.HistoryEvent]) -> dict[str, float]:
    """Milliseconds per segment for one completed order workflow."""
    kinds = [e.WhichOneof("eventType") for e in history]
    created = next(_us(e.timestamp) for e, k in zip(history, kinds, strict=True) if k == "executionStarted")
    # A turn's events: workflowStarted, the events delivered to it (activity results, stamped when they
    # arrived, before the turn began), then what the worker answered (stamped when the answer arrived).
    turns: list[list[tuple[str, int]]] = []
    for e, k in zip(history, kinds, strict=True):
        if k == "workflowStarted":
            turns.append([])
        if turns:
            turns[-1].append((k, _us(e.timestamp)))
    out: dict[str, float] = {}

    def add(key: str, ms: float) -> None:
        out[key] = out.get(key, 0.0) + ms

    last_answer: int | None = None
    for n, events in enumerate(turns):
        start = events[0][1]
        results = [t for k, t in events if k == "taskCompleted"]
        answers = [t for k, t in events if k in ("taskScheduled", "executionCompleted")]
        if n == 0:
            add("engine: create -> first turn", (start - created) / 1000)
        elif results and last_answer is not None:
            add("activity round trips", (max(results) - last_answer) / 1000)
            add("engine: result -> next turn", (start - max(results)) / 1000)
        if answers:
            add("worker turns", (min(answers) - start) / 1000)
            last_answer = min(answers)
    turn = len(turns)
    out["turns"] = turn
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--synchronous", choices=["full", "normal"], default="full")
    p.add_argument("--pg", default=DEFAULT_PG)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="durahub-latency-") as tmp:
        dep = Deployment(args.db, args.synchronous, Path(tmp), args.pg)
        try:
            rows: list[tuple[float, dict[str, float]]] = []
            ids: list[tuple[str, float]] = []
            for i in range(args.n + 20):
                t0 = time.perf_counter()
                iid = dep.client.schedule_new_workflow(ORDER, input=1)
                dep.client.wait_for_workflow_completion(iid, timeout_in_seconds=60)
                if i >= 20:  # warm-up excluded
                    ids.append((iid, (time.perf_counter() - t0) * 1000))
            stub = taskhub_grpc.TaskHubSidecarServiceStub(grpc.insecure_channel(_grpc_target(dep)))
            for iid, total in ids:
                history = list(stub.GetInstanceHistory(pb.GetInstanceHistoryRequest(instanceId=iid)).events)
                rows.append((total, segments(history)))
        finally:
            dep.close()
    total = statistics.median(r[0] for r in rows)
    keys = ["engine: create -> first turn", "worker turns", "activity round trips", "engine: result -> next turn"]
    med = {k: statistics.median(r[1].get(k, 0.0) for r in rows) for k in keys}
    print(f"latency breakdown, {args.db}" + (f" ({args.synchronous})" if args.db == "sqlite" else "")
          + f", {len(rows)} sequential order workflows, medians in ms")
    print(f"  {'client-observed start-and-wait':44s} {total:7.2f}")
    for k in keys:
        print(f"  {k:44s} {med[k]:7.2f}")
    print(f"  {'client + tail (the rest)':44s} {total - sum(med.values()):7.2f}")
    print(f"  turns per workflow: {statistics.median(r[1]['turns'] for r in rows):.0f}")
    return 0


def _grpc_target(dep: Deployment) -> str:
    # The engine's command line carries its gRPC port.
    args = dep.engine.args
    assert isinstance(args, list)
    return f"127.0.0.1:{args[args.index('--grpc-port') + 1]}"


if __name__ == "__main__":
    sys.exit(main())
