"""`run_activity`: call an activity function as the SDK's worker would, with a real `WorkflowActivityContext`,
no engine needed (Temporal's `ActivityEnvironment`, what dapr/dotnet-sdk#1200 asked for)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

import dapr.ext.workflow as wf
from dapr.ext.workflow._durabletask import task


def activity_context(instance_id: str = "test-instance", task_id: int = 1,
                     task_execution_id: str = "") -> wf.WorkflowActivityContext:
    """The context the SDK gives an activity of workflow `instance_id` (`ctx.workflow_id`, `ctx.task_id`)."""
    return wf.WorkflowActivityContext(task.ActivityContext(instance_id, task_id, task_execution_id))


def _takes_input(fn: Callable[..., Any]) -> bool:
    params = [p for p in inspect.signature(fn).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    return len(params) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params)


def run_activity(fn: Callable[..., Any], input: Any = None, *, instance_id: str = "test-instance",
                 task_id: int = 1, task_execution_id: str = "") -> Any:
    """Run activity `fn` on `input` and return its result (an `async def` activity is run to completion).
    Like the SDK, an activity declared without an input parameter is called with the context alone."""
    if "_dapr_alternate_name" in vars(fn) and hasattr(fn, "__wrapped__"):
        fn = fn.__wrapped__  # `@runtime.activity` leaves a stand-in that returns the function
    ctx = activity_context(instance_id, task_id, task_execution_id)
    result = fn(ctx, input) if _takes_input(fn) else fn(ctx)
    if inspect.isawaitable(result):
        async def finish() -> Any:
            return await result

        return asyncio.run(finish())
    return result
