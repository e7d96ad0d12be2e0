"""The ceiling the official SDK worker imposes: its orchestration executor driven in-process by an "engine"
that answers instantly (no gRPC, no storage), with the same turns durahub produces.

    python -m bench.tools.ceiling [--smoke]          # in the durahub venv; prints one BENCH-RESULT line

Each turn builds the WorkflowRequest the engine would send (stateful history: only the new events travel),
parses it as the worker would, replays history + new events in the SDK's _OrchestrationExecutor exactly
as TaskHubGrpcWorker._execute_orchestrator does, and serializes the WorkflowResponse. The SDK replays
the whole history on every turn (the 1.19 stateful-history cache only saves the transfer), so a chain of
n activities costs sum(k=1..n) replay(k): quadratic.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any

import dapr.ext.workflow as wf
import dapr.ext.workflow._durabletask.internal.helpers as ph
import dapr.ext.workflow._durabletask.internal.protos as pb
from dapr.ext.workflow._durabletask.worker import _OrchestrationExecutor

from bench import common
from bench.apps.dapr_app import CHAIN, FANOUT, ORDER, build_runtime


class InstantEngine:
    def __init__(self) -> None:
        runtime = build_runtime("1")  # never started: only its registry is used
        self.registry = runtime._WorkflowRuntime__worker._registry  # type: ignore[attr-defined]
        self.logger = logging.getLogger("bench.tools.ceiling")
        self.logger.setLevel(logging.ERROR)

    def turn(self, iid: str, history: list[Any], new: list[Any]) -> list[Any]:
        req = pb.WorkflowRequest(instanceId=iid, newEvents=new)
        req.cachedHistory.eventCount = len(history)
        req = pb.WorkflowRequest.FromString(req.SerializeToString())
        old = history + list(req.pastEvents)  # what _resolve_history does on a cache hit
        result = _OrchestrationExecutor(self.registry, self.logger).execute(iid, old, req.newEvents)
        res = pb.WorkflowResponse(instanceId=iid, actions=result.actions)
        return list(pb.WorkflowResponse.FromString(res.SerializeToString()).actions)

    def run(self, iid: str, name: str, value: int, per_turn: list[float] | None = None) -> int:
        """Drive one instance to completion; every activity completes in the next turn. Returns turns."""
        history: list[Any] = []
        new = [ph.new_workflow_started_event(), ph.new_execution_started_event(name, iid, str(value))]
        turns = 0
        while True:
            t = time.process_time()
            actions = self.turn(iid, history, new)
            if per_turn is not None:
                per_turn.append(time.process_time() - t)
            turns += 1
            history.extend(new)
            new = [ph.new_workflow_started_event()]
            done = False
            for a in actions:
                kind = a.WhichOneof("workflowActionType")
                if kind == "scheduleTask":
                    history.append(ph.new_task_scheduled_event(a.id, a.scheduleTask.name, a.scheduleTask.input.value))
                    new.append(ph.new_task_completed_event(a.id, a.scheduleTask.input.value))
                elif kind == "completeWorkflow":
                    done = True
            if done:
                if actions[-1].completeWorkflow.workflowStatus != pb.ORCHESTRATION_STATUS_COMPLETED:
                    raise RuntimeError(f"{iid} did not complete: {actions[-1]}")
                return turns


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    sizes = common.SMOKE_SIZES if args.smoke else common.FULL_SIZES
    eng = InstantEngine()
    out: dict[str, Any] = {}
    assert wf  # the SDK under test

    n = sizes["order_n"]
    t0 = time.process_time()
    turns = sum(eng.run(f"o{i}", ORDER, i) for i in range(n))
    cpu = time.process_time() - t0
    out["order"] = {"n": n, "turns": turns, "cpu_s": round(cpu, 3), "wf_per_cpu_s": round(n / cpu, 1),
                    "us_per_turn": round(1e6 * cpu / turns, 1)}

    for f in sizes["fanout"]:
        t0 = time.process_time()
        eng.run(f"f{f}", FANOUT, f)
        out[f"fanout:{f}"] = {"cpu_s": round(time.process_time() - t0, 3)}

    c = sizes["chain"]
    per_turn: list[float] = []
    t0 = time.process_time()
    turns = eng.run("c", CHAIN, c, per_turn)
    cpu = time.process_time() - t0
    first = sum(per_turn[1:11]) / max(1, len(per_turn[1:11]))
    last = sum(per_turn[-10:]) / max(1, len(per_turn[-10:]))
    out[f"chain:{c}"] = {
        "turns": turns, "cpu_s": round(cpu, 3),
        "first_turns_ms": round(1000 * first, 3), "last_turns_ms": round(1000 * last, 3),
        # what the chain would cost if each turn replayed only its new events (a linear worker)
        "linear_estimate_s": round(first * turns, 3),
    }
    common.emit({"system": "sdk-ceiling", "backend": "in-process", "results": out, "errors": {}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
