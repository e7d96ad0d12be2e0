"""Workflow versioning and patching (spec §3.14, python-sdk examples/workflow/versioning.py).

Each test owns a server and swaps WorkflowRuntimes with different code over the same
instances: the server must record the version name / patches of each turn, stall an
instance (STALLED) when the connected worker cannot replay it, keep its queued events, and
retry it once a worker with suitable code connects (or the server restarts).
"""

from __future__ import annotations

from collections.abc import Callable

import dapr.ext.workflow as wf
import pytest

from testsupport.sdk import (
    assert_completed,
    complete,
    describe,
    make_client,
    new_id,
    retry_unavailable,
    running_runtime,
    state_of,
    wait_for_custom_status,
    wait_for_status,
)
from testsupport.server import DurahubServer

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        not hasattr(wf.WorkflowRuntime, "register_versioned_workflow")
        or not hasattr(wf.DaprWorkflowContext, "is_patched"),
        reason="this SDK has no workflow versioning/patching API",
    ),
]


def note(ctx: wf.WorkflowActivityContext, s: str) -> str:
    return s


# ---- versioned workflows: same name, two implementations --------------------------------


def vwf_v1(ctx: wf.DaprWorkflowContext, _):
    first = yield ctx.call_activity(note, input="v1-start")
    ctx.set_custom_status("v1:waiting")
    ev = yield ctx.wait_for_external_event("go")
    return f"v1:{first}:{ev}"


def vwf_v2(ctx: wf.DaprWorkflowContext, _):
    ctx.set_custom_status("v2:waiting")
    ev = yield ctx.wait_for_external_event("go")
    last = yield ctx.call_activity(note, input="v2-end")
    return f"v2:{ev}:{last}"


# ---- patched workflow: same name, code with and without the patch ----------------------


def pwf_with_patch(ctx: wf.DaprWorkflowContext, _):
    patched = ctx.is_patched("p1")
    if patched:
        yield ctx.call_activity(note, input="patched-step")
    ctx.set_custom_status("waiting")
    ev = yield ctx.wait_for_external_event("go")
    return {"patched": patched, "ev": ev}


def pwf_without_patch(ctx: wf.DaprWorkflowContext, _):
    ctx.set_custom_status("waiting")
    ev = yield ctx.wait_for_external_event("go")
    return {"patched": None, "ev": ev}


def pwf_check_only(ctx: wf.DaprWorkflowContext, _):
    """Like versioning.py's patching_workflow: the patch check guards no work."""
    patched = ctx.is_patched("p1")
    ctx.set_custom_status("waiting")
    ev = yield ctx.wait_for_external_event("go")
    return {"patched": patched, "ev": ev}


def pwf_check_removed(ctx: wf.DaprWorkflowContext, _):
    ctx.set_custom_status("waiting")
    ev = yield ctx.wait_for_external_event("go")
    return {"patched": "removed", "ev": ev}


def _versioned(*entries: tuple[Callable, str, bool], name: str) -> dict:
    return {
        "versioned": [(fn, name, version, latest) for fn, version, latest in entries],
        "activities": [note],
    }


def test_inflight_instance_keeps_its_version(server_factory: Callable[..., DurahubServer]) -> None:
    srv = server_factory()
    client = make_client(srv)
    name = "vwf"
    with running_runtime(srv, **_versioned((vwf_v1, "v1", True), name=name)):
        old = client.schedule_new_workflow(name, instance_id=new_id("old"))
        wait_for_custom_status(client, old, "v1:waiting")
    with running_runtime(srv, **_versioned((vwf_v1, "v1", False), (vwf_v2, "v2", True), name=name)):
        client.raise_workflow_event(old, "go", data="a")
        assert assert_completed(complete(client, old)) == "v1:v1-start:a"
        new = client.schedule_new_workflow(name, instance_id=new_id("new"))
        wait_for_custom_status(client, new, "v2:waiting")
        client.raise_workflow_event(new, "go", data="b")
        assert assert_completed(complete(client, new)) == "v2:b:v2-end"
    client.close()


def test_missing_version_stalls_then_completes_when_worker_has_it(
    server_factory: Callable[..., DurahubServer],
) -> None:
    srv = server_factory()
    client = make_client(srv)
    name = "vstall"
    with running_runtime(srv, **_versioned((vwf_v1, "v1", True), name=name)):
        iid = client.schedule_new_workflow(name, instance_id=new_id("stall"))
        wait_for_custom_status(client, iid, "v1:waiting")

    # A worker that only knows v2 cannot replay the v1 instance: STALLED, event kept.
    with running_runtime(srv, **_versioned((vwf_v2, "v2", True), name=name)):
        client.raise_workflow_event(iid, "go", data="kept")
        st = wait_for_status(client, iid, wf.WorkflowStatus.STALLED, timeout=20)
        assert st.serialized_output is None
        # STALLED is not a completion.
        with pytest.raises(TimeoutError):
            client.wait_for_workflow_completion(iid, timeout_in_seconds=1)
        assert state_of(client, iid).runtime_status == wf.WorkflowStatus.STALLED

    # New code with both versions: the stalled instance resumes on v1 with the queued event.
    with running_runtime(srv, **_versioned((vwf_v1, "v1", False), (vwf_v2, "v2", True), name=name)):
        st = complete(client, iid, timeout=30)
        assert assert_completed(st) == "v1:v1-start:kept", describe(st)
    client.close()


def test_patch_recorded_and_inflight_instance_keeps_unpatched_path(
    server_factory: Callable[..., DurahubServer],
) -> None:
    srv = server_factory()
    client = make_client(srv)
    with running_runtime(srv, workflows=[(pwf_without_patch, "pwf")], activities=[note]):
        old = client.schedule_new_workflow("pwf", instance_id=new_id("old"))
        wait_for_custom_status(client, old, "waiting")

    with running_runtime(srv, workflows=[(pwf_with_patch, "pwf")], activities=[note]):
        # Replaying an instance that ran before the patch: is_patched() is False.
        client.raise_workflow_event(old, "go", data=1)
        assert assert_completed(complete(client, old)) == {"patched": False, "ev": 1}
        # A new instance takes the patched branch, and still does so when its history is
        # replayed in the next turn (the server must have recorded the patch).
        new = client.schedule_new_workflow("pwf", instance_id=new_id("new"))
        wait_for_custom_status(client, new, "waiting")
        client.raise_workflow_event(new, "go", data=2)
        assert assert_completed(complete(client, new)) == {"patched": True, "ev": 2}
    client.close()


def test_patch_mismatch_stalls_and_recovers_after_server_restart(
    server_factory: Callable[..., DurahubServer],
) -> None:
    srv = server_factory()
    client = make_client(srv)
    with running_runtime(srv, workflows=[(pwf_check_only, "pwf2")], activities=[note]):
        iid = client.schedule_new_workflow("pwf2", instance_id=new_id("pm"))
        wait_for_custom_status(client, iid, "waiting")

    # Code that dropped the patch check cannot replay a history that applied it.
    with running_runtime(srv, workflows=[(pwf_check_removed, "pwf2")], activities=[note]):
        client.raise_workflow_event(iid, "go", data="queued")
        wait_for_status(client, iid, wf.WorkflowStatus.STALLED, timeout=20)

    # Restart the server (as in the SDK sample), then connect the original code.
    srv.stop()
    srv.start()
    client.close()
    client = make_client(srv)
    st = retry_unavailable(lambda: state_of(client, iid))
    assert st is not None and st.runtime_status == wf.WorkflowStatus.STALLED, describe(st)
    with running_runtime(srv, workflows=[(pwf_check_only, "pwf2")], activities=[note]):
        st = complete(client, iid, timeout=30)
        assert assert_completed(st) == {"patched": True, "ev": "queued"}
    client.close()
