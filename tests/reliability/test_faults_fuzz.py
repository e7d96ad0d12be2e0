"""Bad input: hypothesis-generated requests to every TaskHubSidecarService RPC and odd Dapr HTTP requests.

Every bad request must get a clear status (never UNKNOWN or INTERNAL), the server must stay up, and the
stored state (extension API listing + histories) must be unchanged. No worker is connected, so nothing
that is accepted can run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import grpc
import httpx
import pytest
from dapr.ext.workflow._durabletask.internal import orchestrator_service_pb2_grpc as stubs
from dapr.ext.workflow._durabletask.internal import protos as pb
from google.protobuf import empty_pb2
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from testsupport.faultlib import ext_instance, ext_list, scale
from testsupport.server import DurahubServer

pytestmark = [pytest.mark.timeout(600)]

EXAMPLES = scale(40, 400)
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                    phases=[Phase.explicit, Phase.reuse, Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large])

# Clear statuses. UNKNOWN and INTERNAL mean "the server did not know what happened".
CLEAR = {
    grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.UNIMPLEMENTED,
}

# Instance ids that cannot exist in the fixture's store (its ids all start with "keep-").
odd_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=80)
bad_ids = st.one_of(
    st.just(""),
    odd_text.map(lambda s: "fz-" + s),
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1025, max_size=1100),
    odd_text.map(lambda s: "fz\x00" + s),
    st.sampled_from(["fz-\u202e\u0000rtl", "fz-" + "🙂" * 300, "fz-\ufeff", "fz-/../..", "fz-%00", "fz- "]),
)
payloads = st.one_of(
    st.none(),
    odd_text,
    st.just("[" * 5000 + "]" * 5000),  # deeply nested JSON
    st.just("x" * (5 * 1024 * 1024)),  # over the 4 MiB message limit
    st.just("\x00"),
)
enums = st.one_of(st.integers(min_value=-5, max_value=12), st.integers(min_value=-(2**31), max_value=2**31 - 1))


def _set_str(msg: Any, field: str, value: str | None) -> None:
    if value is not None:
        getattr(msg, field).value = value


@pytest.fixture(scope="module")
def stub(server: DurahubServer) -> Iterator[stubs.TaskHubSidecarServiceStub]:
    opts = [("grpc.max_send_message_length", 16 * 1024 * 1024), ("grpc.max_receive_message_length", 16 * 1024 * 1024)]
    ch = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}", options=opts)
    s = stubs.TaskHubSidecarServiceStub(ch)
    # Some stored state to protect: a completed, a running (waiting) and a suspended instance.
    for iid, name in (("keep-a", "wf_a"), ("keep-b", "wf_b"), ("keep-c", "wf_c")):
        req = pb.CreateInstanceRequest(instanceId=iid, name=name)
        req.input.value = '"in"'
        req.scheduledStartTimestamp.FromSeconds(int(time.time()) + 86400)  # future: stays PENDING
        s.StartInstance(req, timeout=10)
    _baseline.extend(snapshot(server))
    yield s
    ch.close()


def snapshot(server: DurahubServer) -> list[Any]:
    rows = ext_list(server.http_url)
    return [(r, ext_instance(server.http_url, r["instance_id"])) for r in rows]


_baseline: list[Any] = []
unclear: list[str] = []


def call(fn: Any, request: Any, expect_ok: bool = False, timeout: float = 5.0) -> None:
    try:
        fn(request, timeout=timeout)
    except grpc.RpcError as e:
        code = e.code()
        if code not in CLEAR:
            unclear.append(f"{fn._method.decode() if hasattr(fn, '_method') else fn}: {code.name} {e.details()!r}")
        assert code in CLEAR, f"unclear status {code.name}: {e.details()!r} for {type(request).__name__}"
        assert not expect_ok, f"{code.name}: {e.details()!r}"
    except ValueError:
        pass  # the client could not even encode it (e.g. invalid UTF-8): never sent


@given(iid=bad_ids, name=st.one_of(st.just(""), odd_text.map(lambda s: "\x00" + s)), inp=payloads,
       sched=st.booleans())
@SETTINGS
def test_fuzz_start_instance(stub, iid: str, name: str, inp: str | None, sched: bool) -> None:
    req = pb.CreateInstanceRequest(instanceId=iid, name=name)
    _set_str(req, "input", inp)
    if sched:
        req.scheduledStartTimestamp.FromSeconds(int(time.time()) + 3600)
    call(stub.StartInstance, req)


@given(iid=bad_ids, name=odd_text, inp=payloads, payloads_=st.booleans())
@SETTINGS
def test_fuzz_instance_operations(stub, iid: str, name: str, inp: str | None, payloads_: bool) -> None:
    call(stub.GetInstance, pb.GetInstanceRequest(instanceId=iid, getInputsAndOutputs=payloads_))
    call(stub.WaitForInstanceStart, pb.GetInstanceRequest(instanceId=iid), timeout=0.2)
    call(stub.WaitForInstanceCompletion, pb.GetInstanceRequest(instanceId=iid), timeout=0.2)
    r = pb.RaiseEventRequest(instanceId=iid, name=name)
    _set_str(r, "input", inp)
    call(stub.RaiseEvent, r)
    t = pb.TerminateRequest(instanceId=iid, recursive=payloads_)
    _set_str(t, "output", inp)
    call(stub.TerminateInstance, t)
    s = pb.SuspendRequest(instanceId=iid)
    _set_str(s, "reason", inp)
    call(stub.SuspendInstance, s)
    call(stub.ResumeInstance, pb.ResumeRequest(instanceId=iid))
    call(stub.PurgeInstances, pb.PurgeInstancesRequest(instanceId=iid, recursive=payloads_, force=payloads_))
    call(stub.GetInstanceHistory, pb.GetInstanceHistoryRequest(instanceId=iid))
    call(stub.RerunWorkflowFromEvent, pb.RerunWorkflowFromEventRequest(
        sourceInstanceID=iid, eventID=7, newInstanceID="fz-new"))


@given(statuses=st.lists(enums, max_size=5), frm=st.integers(-(2**40), 2**40), to=st.integers(-(2**40), 2**40),
       size=st.integers(-5, 20000), token=odd_text)
@SETTINGS
def test_fuzz_filters_and_listing(stub, statuses: list[int], frm: int, to: int, size: int, token: str) -> None:
    # Only non-terminal statuses can match the fixture's PENDING instances, and purge skips those anyway.
    req = pb.PurgeInstancesRequest()
    req.purgeInstanceFilter.runtimeStatus.extend([s for s in statuses if s not in (1, 3, 5)])
    req.purgeInstanceFilter.createdTimeFrom.seconds = frm  # unchecked: out-of-range timestamps too
    req.purgeInstanceFilter.createdTimeTo.seconds = to
    call(stub.PurgeInstances, req)
    call(stub.ListInstanceIDs, pb.ListInstanceIDsRequest(pageSize=max(0, size), continuationToken=token))
    call(stub.Hello, empty_pb2.Empty())


action_kinds = st.sampled_from(["scheduleTask", "createTimer", "createChildWorkflow", "completeWorkflow",
                                "sendEvent", "terminateWorkflow", "empty"])


@given(iid=st.one_of(bad_ids, st.sampled_from(["keep-a", "keep-b", "keep-c"])),
       token=st.one_of(st.just(""), odd_text), task_id=enums, kinds=st.lists(action_kinds, max_size=6),
       status=enums, inp=payloads, ids=st.lists(enums, max_size=6))
@SETTINGS
def test_fuzz_completions(stub, iid: str, token: str, task_id: int, kinds: list[str], status: int,
                          inp: str | None, ids: list[int]) -> None:
    a = pb.ActivityResponse(instanceId=iid, taskId=task_id, completionToken=token)
    _set_str(a, "result", inp)
    if task_id % 2:
        a.failureDetails.errorType = "Boom"
    call(stub.CompleteActivityTask, a)
    r = pb.WorkflowResponse(instanceId=iid, completionToken=token)
    for k, i in zip(kinds, ids + [1] * len(kinds), strict=False):
        act = r.actions.add(id=i)
        if k == "scheduleTask":
            act.scheduleTask.name = "x"
            _set_str(act.scheduleTask, "input", inp)
        elif k == "createTimer":
            act.createTimer.fireAt.seconds = i
        elif k == "createChildWorkflow":
            act.createChildWorkflow.instanceId = iid
            act.createChildWorkflow.name = "child"
        elif k == "completeWorkflow":
            act.completeWorkflow.workflowStatus = status
            _set_str(act.completeWorkflow, "result", inp)
        elif k == "sendEvent":
            act.sendEvent.instance.instanceId = "keep-a"
            act.sendEvent.name = "e"
        elif k == "terminateWorkflow":
            act.terminateWorkflow.instanceId = "keep-b"
    _set_str(r, "customStatus", inp)
    call(stub.CompleteOrchestratorTask, r)
    call(stub.CompleteWorkflowTask, r)


def _send_junk(server: DurahubServer) -> list[tuple[str, grpc.StatusCode, str]]:
    ch = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    seen = []
    try:
        for method in ("StartInstance", "GetInstance", "RaiseEvent", "TerminateInstance", "PurgeInstances",
                       "CompleteActivityTask", "CompleteOrchestratorTask"):
            raw = ch.unary_unary(f"/TaskHubSidecarService/{method}", request_serializer=None,
                                 response_deserializer=None)
            for junk in (b"\xff\xff\xff\xff", b"\x0a\xff\xff\xff\xff\x0f", bytes(range(256))):
                try:
                    raw(junk, timeout=5)
                    seen.append((method, grpc.StatusCode.OK, ""))
                except grpc.RpcError as e:
                    seen.append((method, e.code(), e.details()))
    finally:
        ch.close()
    return seen


def test_undecodable_bytes_leave_the_server_up(server: DurahubServer, stub) -> None:
    seen = _send_junk(server)
    assert all(code != grpc.StatusCode.OK for _, code, _ in seen)
    assert server.is_running()
    assert httpx.get(f"{server.http_url}/v1.0/healthz", timeout=5).status_code == 204


def test_undecodable_bytes_get_a_clear_status(server: DurahubServer, stub) -> None:
    unclear_here = [(m, c.name, d) for m, c, d in _send_junk(server) if c not in CLEAR]
    assert not unclear_here, unclear_here[:5]


# -- HTTP ----------------------------------------------------------------------------------------------

segment = st.one_of(st.sampled_from(["keep-a", "keep-b", "", ".", "..", "%00", "%ff", "a" * 2000, "🙂", "%2F"]),
                    odd_text.map(lambda s: quote(s, safe="")))
prefixes = st.sampled_from(["/v1.0", "/v1.0-alpha1", "/v1.0-beta1", "/v1.0/workflows", "/durahub/v1", ""])
ops = st.sampled_from(["start", "raiseEvent", "terminate", "pause", "resume", "purge", "", "wait", "rerun"])
bodies = st.one_of(st.none(), st.binary(max_size=2000), st.just(b"{" * 10000), st.just(b"\x00" * 100),
                   st.just(b'{"event_id": -1}'), st.just(b'{"statuses": ["NOPE"]}'))


@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]), prefix=prefixes, comp=segment, iid=segment,
       op=ops, extra=segment, body=bodies, query=st.dictionaries(odd_text, odd_text, max_size=3))
@SETTINGS
def test_fuzz_http_routes_never_5xx(server: DurahubServer, stub, method: str, prefix: str, comp: str, iid: str,
                                    op: str, extra: str, body: bytes | None, query: dict[str, str]) -> None:
    # Everything but start (which would create instances; covered by dedicated tests) on every route shape.
    if op == "start":
        iid = ""
    if method != "GET" and iid.startswith("keep-"):
        iid = "fz-" + iid  # a valid operation on a stored instance is not bad input
    if op == "wait":
        query = {**query, "timeout": "0"}  # the extension long-poll would otherwise wait 30 s, legitimately
    path = f"{prefix}/workflows/{comp}/{iid}/{op}/{extra}".replace("/start/", "/start-x/")
    for p in (path, f"{prefix}/workflows/{comp}/{iid}", f"/durahub/v1/instances/{iid}/{op}"):
        try:
            r = httpx.request(method, f"{server.http_url}{p}", content=body, params=query, timeout=10)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, UnicodeError):
            continue
        assert r.status_code < 500, f"{method} {p}: {r.status_code} {r.text[:300]}"


def test_zz_state_unchanged_and_server_up(server: DurahubServer, stub) -> None:
    """Runs last in this module: after all the fuzzing, the store holds exactly what it held before."""
    assert server.is_running()
    assert httpx.get(f"{server.http_url}/v1.0/healthz", timeout=5).status_code == 204
    assert len(_baseline) == 3
    after = snapshot(server)
    assert after == _baseline
    print(f"\nunclear statuses seen: {len(unclear)}")
    for u in unclear[:20]:
        print("  ", u)
