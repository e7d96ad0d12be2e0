"""Regressions for the Dapr failure modes of issue 5: terminate durable and idempotent, events around
continue-as-new, timers once and on time across restarts, nothing stuck after a restart, purge without
orphans, operations recorded while no worker is connected."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import dapr.ext.workflow as wf
import grpc
import pytest

from testsupport import faultlib
from testsupport.faultlib import WorkerProcess, ext_instance, ext_list, history_problems, read_log
from testsupport.process import wait_until
from testsupport.sdk import describe, make_client, new_id, wait_for_status
from testsupport.server import DurahubServer

pytestmark = [pytest.mark.timeout(240)]

S = wf.WorkflowStatus


@pytest.fixture
def env(server_factory: Callable[..., DurahubServer], tmp_path: Path):
    srv = server_factory()
    log = tmp_path / "activities.log"
    worker = WorkerProcess(srv.port, log, tmp_path / "worker.out", step_seconds=0.3).start()
    client = make_client(srv)
    wait_until(lambda: srv.connected_workers() >= 1, timeout=30, message="worker never connected")
    yield srv, client, worker, log
    client.close()
    worker.stop()


def _inst(srv: DurahubServer, iid: str) -> dict:
    inst = ext_instance(srv.http_url, iid)
    assert inst is not None, f"{iid} does not exist"
    assert not history_problems(inst), history_problems(inst)
    return inst


def _retry(fn):
    return faultlib._retry(fn)


# -- terminate ---------------------------------------------------------------------------------------


def test_terminate_is_durable_and_idempotent(env) -> None:
    srv, client, _, _ = env
    iid = client.schedule_new_workflow(faultlib.fl_events, input=5, instance_id=new_id("term"))
    client.terminate_workflow(iid, output="bye")
    client.terminate_workflow(iid, output="again")  # repeated: OK, first output stays
    srv.kill()
    srv.start()
    st = _retry(lambda: client.get_workflow_state(iid))
    assert st.runtime_status == S.TERMINATED and json.loads(st.serialized_output) == "bye", describe(st)
    _retry(lambda: client.terminate_workflow(iid, output="after-restart"))
    client.raise_workflow_event(iid, "e", data="late")  # accepted, dropped
    inst = _inst(srv, iid)
    assert [e["kind"] for e in inst["history"]].count("executionCompleted") == 1
    assert inst["status"] == "TERMINATED" and json.loads(inst["output"]) == "bye"


def test_terminate_suspended_instance(env) -> None:
    srv, client, _, _ = env
    iid = client.schedule_new_workflow(faultlib.fl_events, input=2, instance_id=new_id("termsus"))
    client.pause_workflow(iid)
    wait_for_status(client, iid, S.SUSPENDED)
    client.terminate_workflow(iid, output="stop")
    st = client.get_workflow_state(iid)
    assert st.runtime_status == S.TERMINATED and json.loads(st.serialized_output) == "stop"
    client.terminate_workflow(iid)
    assert _inst(srv, iid)["status"] == "TERMINATED"


def test_terminate_racing_completion_has_one_outcome(env) -> None:
    srv, client, _, _ = env
    ids = [client.schedule_new_workflow(faultlib.fl_chain, input=i, instance_id=new_id("race")) for i in range(12)]
    # Terminate each at a different point of its three 0.3 s activities, the last ones after they finished.
    threads = []
    for k, iid in enumerate(ids):
        t = threading.Timer(0.1 * k, lambda iid=iid: client.terminate_workflow(iid, output="t"))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    for i, iid in enumerate(ids):
        st = client.wait_for_workflow_completion(iid, timeout_in_seconds=30)
        assert st is not None and st.runtime_status in (S.COMPLETED, S.TERMINATED), describe(st)
        expected = i + 3 if st.runtime_status == S.COMPLETED else "t"
        assert json.loads(st.serialized_output) == expected
        inst = _inst(srv, iid)
        assert [e["kind"] for e in inst["history"]].count("executionCompleted") == 1


# -- continue-as-new ---------------------------------------------------------------------------------


def test_events_raised_before_and_during_continue_as_new_are_kept(env) -> None:
    srv, client, _, _ = env
    n = 30
    iid = client.schedule_new_workflow(faultlib.fl_can_events, input={"got": [], "want": n},
                                       instance_id=new_id("canev"))
    # A burst: most arrive while a continue-as-new turn is in flight, or just before one.
    for i in range(n):
        client.raise_workflow_event(iid, "e", data=f"v{i}")
    st = client.wait_for_workflow_completion(iid, timeout_in_seconds=60)
    assert st is not None and st.runtime_status == S.COMPLETED, describe(st)
    assert json.loads(st.serialized_output) == [f"v{i}" for i in range(n)]
    _inst(srv, iid)


def test_events_around_continue_as_new_survive_kill9(env) -> None:
    srv, client, _, _ = env
    n = 12
    iid = client.schedule_new_workflow(faultlib.fl_can_events, input={"got": [], "want": n},
                                       instance_id=new_id("canevk"))
    for i in range(n):
        _retry(lambda i=i: client.raise_workflow_event(iid, "e", data=f"v{i}"))
        if i % 4 == 3:
            srv.kill()
            srv.start()
    st = _retry(lambda: client.wait_for_workflow_completion(iid, timeout_in_seconds=60))
    assert st is not None and st.runtime_status == S.COMPLETED, describe(st)
    assert json.loads(st.serialized_output) == [f"v{i}" for i in range(n)]


# -- timers ------------------------------------------------------------------------------------------


def test_timers_fire_once_and_not_early_across_restarts(env) -> None:
    srv, client, _, _ = env
    started = time.time()
    ids = [client.schedule_new_workflow(faultlib.fl_timer, input=s, instance_id=new_id("tmr"))
           for s in (1.0, 2.0, 3.0, 4.0)]
    # Restart before, around and after the due times.
    for _ in range(3):
        time.sleep(1.1)
        srv.kill()
        srv.start()
    for iid, s in zip(ids, (1.0, 2.0, 3.0, 4.0), strict=True):
        st = _retry(lambda iid=iid: client.wait_for_workflow_completion(iid, timeout_in_seconds=60))
        assert st is not None and st.runtime_status == S.COMPLETED, describe(st)
        inst = _inst(srv, iid)
        fired = [e for e in inst["history"] if e["kind"] == "timerFired"]
        assert len(fired) == 1, fired
        fired_at = faultlib._iso_us(fired[0]["timestamp"]) / 1e6
        assert fired_at >= started + s - 0.05, f"timer of {s}s fired after {fired_at - started:.2f}s"


# -- nothing stuck after a restart ----------------------------------------------------------------------


def test_nothing_left_running_after_kill_right_after_starts(env) -> None:
    srv, client, _, _ = env
    ids = {}
    for i in range(15):
        kind = (faultlib.fl_chain, faultlib.fl_fanout, faultlib.fl_parent)[i % 3]
        iid = client.schedule_new_workflow(kind, input=i, instance_id=new_id("stuck"))
        ids[iid] = {faultlib.fl_chain: i + 3, faultlib.fl_fanout: 5 * i + 15, faultlib.fl_parent: [i + 3, i + 4]}[kind]
        if i % 5 == 4:
            srv.kill()  # right after StartInstance returned: first turn committed, activities pending
            srv.start()
    for iid, want in ids.items():
        st = _retry(lambda iid=iid: client.wait_for_workflow_completion(iid, timeout_in_seconds=60))
        assert st is not None and st.runtime_status == S.COMPLETED, describe(st)
        assert json.loads(st.serialized_output) == want
    leftovers = [i for i in ext_list(srv.http_url, status=["RUNNING", "PENDING"]) if i["instance_id"] in ids]
    assert not leftovers


# -- purge -------------------------------------------------------------------------------------------


def test_purge_during_activity_and_child_work_leaves_no_orphans(env) -> None:
    srv, client, _, log = env
    iid = client.schedule_new_workflow(faultlib.fl_parent, input=1, instance_id=new_id("purge"))
    wait_until(lambda: any(r["k"].startswith(f"{iid}:") for r in read_log(log) if r["ev"] == "start"),
               timeout=20, message="child activity never started")
    with pytest.raises(grpc.RpcError) as info:
        client.purge_workflow(iid)  # still running: refused, nothing deleted
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert len(ext_list(srv.http_url, instance_id_prefix=iid)) == 3
    client.terminate_workflow(iid)  # recursive: the children too
    wait_until(lambda: all(i["status"] == "TERMINATED" for i in ext_list(srv.http_url, instance_id_prefix=iid)),
               timeout=20, message="children were not terminated")
    client.purge_workflow(iid)
    assert ext_list(srv.http_url, instance_id_prefix=iid) == []
    # The activities that were running finish now; their results must not resurrect anything.
    wait_until(lambda: not _unfinished(log, iid), timeout=20, message="activities never finished")
    assert ext_list(srv.http_url, instance_id_prefix=iid) == []
    assert client.get_workflow_state(iid) is None


def _unfinished(log: Path, prefix: str) -> set[str]:
    recs = [r for r in read_log(log) if r["k"].startswith(prefix)]
    return {r["k"] for r in recs if r["ev"] == "start"} - {r["k"] for r in recs if r["ev"] == "end"}


# -- no worker connected ---------------------------------------------------------------------------------


def test_raise_terminate_pause_without_worker_are_applied_when_one_connects(
    server_factory: Callable[..., DurahubServer], tmp_path: Path
) -> None:
    srv = server_factory()
    log = tmp_path / "activities.log"
    w1 = WorkerProcess(srv.port, log, tmp_path / "w1.out").start()
    client = make_client(srv)
    try:
        wait_until(lambda: srv.connected_workers() >= 1, timeout=30)
        a = client.schedule_new_workflow(faultlib.fl_events, input=1, instance_id=new_id("nw-raise"))
        b = client.schedule_new_workflow(faultlib.fl_events, input=1, instance_id=new_id("nw-term"))
        c = client.schedule_new_workflow(faultlib.fl_events, input=2, instance_id=new_id("nw-pause"))
        w1.stop()
        wait_until(lambda: srv.connected_workers() == 0, timeout=30)
        # HTTP operations do not wait for a worker; they must be recorded durably.
        base = "/v1.0/workflows/dapr"
        assert srv.http_post(f"{base}/{a}/raiseEvent/e", json="hello").status_code == 202
        assert srv.http_post(f"{base}/{b}/terminate").status_code == 202
        assert srv.http_post(f"{base}/{c}/pause").status_code == 202
        assert srv.http_post(f"{base}/{c}/raiseEvent/e", json="while-paused").status_code == 202
        srv.kill()
        srv.start()
        assert client.get_workflow_state(a).runtime_status == S.RUNNING
        w2 = WorkerProcess(srv.port, log, tmp_path / "w2.out").start()
        try:
            st = client.wait_for_workflow_completion(a, timeout_in_seconds=60)
            assert st is not None and json.loads(st.serialized_output) == ["hello"], describe(st)
            st = client.wait_for_workflow_completion(b, timeout_in_seconds=60)
            assert st is not None and st.runtime_status == S.TERMINATED, describe(st)
            wait_for_status(client, c, S.SUSPENDED, timeout=60)
            client.resume_workflow(c)
            client.raise_workflow_event(c, "e", data="after-resume")
            st = client.wait_for_workflow_completion(c, timeout_in_seconds=60)
            assert st is not None and json.loads(st.serialized_output) == ["while-paused", "after-resume"], describe(st)
            for iid in (a, b, c):
                _inst(srv, iid)
        finally:
            w2.stop()
    finally:
        client.close()
        w1.kill()
