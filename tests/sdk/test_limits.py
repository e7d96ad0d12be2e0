"""Dispatch budget: a workflow whose history outgrows what a worker can receive stalls (it does not
kill the worker's stream), and a stalled instance can still be terminated."""

from __future__ import annotations

import dapr.ext.workflow as wf
import pytest

from testsupport.process import wait_until
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
        wait_until(lambda: "exceeds the dispatch budget" in srv.log_text(), timeout=10,
                   message="the stall's reason in the engine log")

        client.terminate_workflow(big, output="stopped")
        st = client.wait_for_workflow_completion(big, timeout_in_seconds=30)
        assert st is not None and st.runtime_status == wf.WorkflowStatus.TERMINATED
        assert st.serialized_output == '"stopped"'
    client.close()


def echo_len(ctx: wf.WorkflowActivityContext, text: str) -> int:
    return len(text)


def propagating_wf(ctx: wf.DaprWorkflowContext, propagate: bool):
    for _ in range(2):
        yield ctx.call_activity(blob, input=20_000)  # about 40 KB of history
    # A 40 KB input: the request alone fits; with the caller's history (which holds the input once more) it
    # would not.
    scope = wf.PropagationScope.OWN_HISTORY if propagate else None
    n = yield ctx.call_activity(echo_len, input="y" * 40_000, propagation=scope)
    return n


def test_an_activity_whose_propagated_history_is_over_the_budget_stalls_its_caller(server_factory) -> None:
    srv: DurahubServer = server_factory(extra_args=["--max-message-bytes", str(96 * 1024)])
    client = make_client(srv)
    with running_runtime(srv, workflows=[propagating_wf], activities=[blob, echo_len]):
        plain = client.schedule_new_workflow(propagating_wf, input=False, instance_id=new_id("plain"))
        st = client.wait_for_workflow_completion(plain, timeout_in_seconds=30)
        assert st is not None and st.runtime_status == wf.WorkflowStatus.COMPLETED and st.serialized_output == "40000"

        carried = client.schedule_new_workflow(propagating_wf, input=True, instance_id=new_id("carried"))
        wait_for_status(client, carried, wf.WorkflowStatus.STALLED, timeout=30)
        # The stall is readable as soon as it commits; the engine logs it right after.
        wait_until(lambda: "activity 'echo_len::" in srv.log_text(), timeout=10,
                   message="the stall's reason in the engine log")
        client.terminate_workflow(carried)
        st = client.wait_for_workflow_completion(carried, timeout_in_seconds=30)
        assert st is not None and st.runtime_status == wf.WorkflowStatus.TERMINATED
    client.close()
