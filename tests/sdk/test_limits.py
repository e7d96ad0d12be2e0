"""Dispatch budget: a workflow whose history outgrows what a worker can receive stalls (it does not
kill the worker's stream), and a stalled instance can still be terminated."""

from __future__ import annotations

import dapr.ext.workflow as wf
import pytest

from testsupport.sdk import make_client, new_id, running_runtime, wait_for_status
from testsupport.server import DurahubServer

pytestmark = pytest.mark.timeout(90)


def blob(ctx: wf.WorkflowActivityContext, n: int) -> str:
    return "x" * n


def growing_wf(ctx: wf.DaprWorkflowContext, rounds: int):
    total = 0
    for _ in range(rounds):
        total += len((yield ctx.call_activity(blob, input=20_000)))
    return total


def test_history_over_the_dispatch_budget_stalls_and_terminate_still_works(server_factory) -> None:
    srv: DurahubServer = server_factory(extra_args=["--max-message-bytes", str(96 * 1024)])
    client = make_client(srv)
    with running_runtime(srv, workflows=[growing_wf], activities=[blob]):
        small = client.schedule_new_workflow(growing_wf, input=2, instance_id=new_id("small"))
        st = client.wait_for_workflow_completion(small, timeout_in_seconds=30)
        assert (
            st is not None
            and st.runtime_status == wf.WorkflowStatus.COMPLETED
            and st.serialized_output == "40000"
        )

        big = client.schedule_new_workflow(growing_wf, input=20, instance_id=new_id("big"))
        wait_for_status(client, big, wf.WorkflowStatus.STALLED, timeout=30)
        assert "exceeds the dispatch budget" in srv.log_text()

        client.terminate_workflow(big, output="stopped")
        st = client.wait_for_workflow_completion(big, timeout_in_seconds=30)
        assert st is not None and st.runtime_status == wf.WorkflowStatus.TERMINATED
        assert st.serialized_output == '"stopped"'
    client.close()
