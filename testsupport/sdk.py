"""The official SDK's side: WorkflowRuntime and DaprWorkflowClient against a DurahubServer, and waiting for
and checking workflow states. Works with SDK 1.19 and the legacy 1.18.3 alike."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import dapr.ext.workflow as wf

from testsupport.process import wait_until

if TYPE_CHECKING:
    from testsupport.server import DurahubServer

# Which SDK generation is installed in this interpreter.
HAS_MANAGEMENT_API = hasattr(wf.DaprWorkflowClient, "get_workflow_history")

TERMINAL = {wf.WorkflowStatus.COMPLETED, wf.WorkflowStatus.FAILED, wf.WorkflowStatus.TERMINATED}


def new_id(prefix: str = "t") -> str:
    """A unique instance id (letters, digits and '-' only, well under 64 chars)."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"



_MARKERS = ("_workflow_registered", "_activity_registered")


def _clear_registration_markers(fn: Callable[..., Any], *, drop_name: bool = False) -> None:
    """The SDK marks a function as registered (and refuses to register it again), so a
    function can normally live in one WorkflowRuntime per process. Tests start several
    runtimes over time, so forget the marks of the previous one."""
    for marker in _MARKERS:
        fn.__dict__.pop(marker, None)
    if drop_name:
        fn.__dict__.pop("_dapr_alternate_name", None)


def make_runtime(
    server: DurahubServer,
    *,
    workflows: Iterable[Callable[..., Any] | tuple[Callable[..., Any], str]] = (),
    activities: Iterable[Callable[..., Any] | tuple[Callable[..., Any], str]] = (),
    versioned: Iterable[tuple[Callable[..., Any], str, str, bool]] = (),
    port: int | str | None = None,
    **runtime_kwargs: Any,
) -> wf.WorkflowRuntime:
    """Build and start a WorkflowRuntime connected to ``server``.

    ``workflows``/``activities`` items are functions or (function, name) pairs;
    ``versioned`` items are (function, workflow name, version name, is_latest); ``port``: another app's
    endpoint (`DurahubServer.open_app`) instead of the engine's own.
    """
    rt = wf.WorkflowRuntime(host="127.0.0.1", port=str(port or server.port), **runtime_kwargs)
    for item in workflows:
        fn, name = item if isinstance(item, tuple) else (item, None)
        _clear_registration_markers(fn, drop_name=name is not None)
        rt.register_workflow(fn, name=name)
    for item in activities:
        fn, name = item if isinstance(item, tuple) else (item, None)
        _clear_registration_markers(fn, drop_name=name is not None)
        rt.register_activity(fn, name=name)
    for fn, name, version_name, is_latest in versioned:
        _clear_registration_markers(fn, drop_name=True)
        rt.register_versioned_workflow(fn, name=name, version_name=version_name, is_latest=is_latest)
    rt.start()
    return rt


@contextlib.contextmanager
def running_runtime(server: DurahubServer, **kwargs: Any) -> Iterator[wf.WorkflowRuntime]:
    rt = make_runtime(server, **kwargs)
    try:
        yield rt
    finally:
        rt.shutdown()


def make_client(server: DurahubServer, port: int | str | None = None) -> wf.DaprWorkflowClient:
    return wf.DaprWorkflowClient(host="127.0.0.1", port=str(port or server.port))


def state_of(client: wf.DaprWorkflowClient, instance_id: str) -> wf.WorkflowState | None:
    return client.get_workflow_state(instance_id, fetch_payloads=True)


def status_of(client: wf.DaprWorkflowClient, instance_id: str) -> wf.WorkflowStatus | None:
    st = client.get_workflow_state(instance_id, fetch_payloads=False)
    return None if st is None else st.runtime_status


def wait_for_status(
    client: wf.DaprWorkflowClient,
    instance_id: str,
    statuses: wf.WorkflowStatus | Iterable[wf.WorkflowStatus],
    timeout: float = 20.0,
) -> wf.WorkflowState:
    wanted = {statuses} if isinstance(statuses, wf.WorkflowStatus) else set(statuses)

    def check() -> wf.WorkflowState | None:
        st = client.get_workflow_state(instance_id, fetch_payloads=True)
        return st if st is not None and st.runtime_status in wanted else None

    return wait_until(
        check,
        timeout=timeout,
        message=lambda: (
            f"{instance_id} never reached {sorted(s.name for s in wanted)}; "
            f"now {status_of(client, instance_id)}"
        ),
    )


def wait_for_custom_status(
    client: wf.DaprWorkflowClient, instance_id: str, value: str, timeout: float = 20.0
) -> wf.WorkflowState:
    def check() -> wf.WorkflowState | None:
        st = client.get_workflow_state(instance_id, fetch_payloads=True)
        return st if st is not None and st.serialized_custom_status == value else None

    return wait_until(check, timeout=timeout, message=f"{instance_id}: custom status never became {value!r}")


def complete(client: wf.DaprWorkflowClient, instance_id: str, timeout: int = 30) -> wf.WorkflowState:
    """wait_for_workflow_completion that never returns None silently."""
    st = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=timeout)
    assert st is not None, f"wait_for_workflow_completion({instance_id}) returned None"
    return st


def output_of(st: wf.WorkflowState) -> Any:
    assert st.serialized_output is not None, f"{st.instance_id} has no output ({st.runtime_status})"
    return json.loads(st.serialized_output)


def describe(st: wf.WorkflowState | None) -> str:
    if st is None:
        return "<no such instance>"
    fd = st.failure_details
    failure = f" failure={fd.error_type}: {fd.message}" if fd is not None else ""
    return (
        f"{st.instance_id} status={st.runtime_status.name} output={st.serialized_output!r}"
        f" custom={st.serialized_custom_status!r}{failure}"
    )


def assert_completed(st: wf.WorkflowState) -> Any:
    assert st.runtime_status == wf.WorkflowStatus.COMPLETED, describe(st)
    return output_of(st)


def retry_unavailable(fn: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Call ``fn``, retrying while the gRPC channel is still reconnecting (UNAVAILABLE)
    after a server restart."""
    import grpc

    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() >= deadline:
                raise
            time.sleep(0.2)
