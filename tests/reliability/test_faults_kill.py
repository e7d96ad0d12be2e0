"""Crash faults: kill -9 of the engine (many cycles, mixed workload), kill -9 of the worker process
mid-activity, graceful SIGTERM mid-load, two competing workers.

The worker is a separate process (testsupport/fault_worker.py) whose activities append every execution to a log
file, so repeated executions can be counted against what was in flight at each kill.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import dapr.ext.workflow as wf
import pytest

from testsupport import faultlib
from testsupport.faultlib import WorkerProcess, exec_stats, ext_instance, history_problems, read_log, scale
from testsupport.process import wait_until
from testsupport.sdk import describe, make_client
from testsupport.server import DurahubServer

pytestmark = [pytest.mark.timeout(900)]


def _worker(srv: DurahubServer, tmp_path: Path, name: str, log: Path, step: float = 0.2) -> WorkerProcess:
    return WorkerProcess(srv.port, log, tmp_path / f"{name}.out", step_seconds=step).start()


def test_engine_kill9_cycles_mixed_workload(server_factory: Callable[..., DurahubServer], tmp_path: Path) -> None:
    srv = server_factory()
    log = tmp_path / "activities.log"
    worker = _worker(srv, tmp_path, "worker", log)
    client = make_client(srv)
    try:
        wait_until(lambda: srv.connected_workers() >= 1, timeout=30, message="worker never connected")
        report = faultlib.run_kill_workload(
            srv, client, log, kills=scale(20, 100), initial_per_kind=scale(3, 10),
            per_cycle_kinds=scale(4, 7), finish_timeout=scale(150, 600),
        )
    finally:
        client.close()
        worker.stop()
    print("\n" + faultlib.format_table(faultlib.report_rows(report)))
    assert report.kills >= 20
    assert not report.wrong, "\n".join(report.wrong[:30])
    assert report.completed == report.expected
    assert report.duplicate_results == 0
    assert not report.history_problems, "\n".join(report.history_problems[:30])
    assert report.events_lost == 0 and report.events_duplicated == 0
    assert not report.left_running, report.left_running[:30]
    # At-least-once, not many times: every repeat is explained by a kill during that task's lifetime.
    assert not report.exec.unexplained, "\n".join(report.exec.unexplained[:30])


def test_worker_kill9_midactivity_new_worker_picks_up(
    server_factory: Callable[..., DurahubServer], tmp_path: Path
) -> None:
    srv = server_factory()
    log = tmp_path / "activities.log"
    w1 = _worker(srv, tmp_path, "w1", log, step=2.0)
    client = make_client(srv)
    try:
        wait_until(lambda: srv.connected_workers() >= 1, timeout=30, message="worker 1 never connected")
        ids = {}
        for i in range(10):
            iid = f"fl-wk-{i}"
            client.schedule_new_workflow(faultlib.fl_fanout, input=i, instance_id=iid)
            ids[iid] = 5 * i + 15
        wait_until(lambda: sum(1 for r in read_log(log) if r["ev"] == "start") >= 10, timeout=30,
                   message="activities never started")
        w1.kill()
        kill_time = time.time()
        recs = read_log(log)
        started = {r["k"] for r in recs if r["ev"] == "start"}
        ended = {r["k"] for r in recs if r["ev"] == "end"}
        in_flight = started - ended
        assert in_flight, "no activity was in flight at the kill; the test proves nothing"
        wait_until(lambda: srv.connected_workers() == 0, timeout=30, message="server never noticed the dead worker")

        w2 = _worker(srv, tmp_path, "w2", log, step=0.2)
        try:
            for iid, want in ids.items():
                st = client.wait_for_workflow_completion(iid, timeout_in_seconds=120)
                assert st is not None and st.runtime_status == wf.WorkflowStatus.COMPLETED, describe(st)
                assert json.loads(st.serialized_output) == want, describe(st)
                inst = ext_instance(srv.http_url, iid)
                assert inst is not None
                assert not history_problems(inst)
        finally:
            w2.stop()
        counts: dict[str, int] = {}
        for r in read_log(log):
            if r["ev"] == "start":
                counts[r["k"]] = counts.get(r["k"], 0) + 1
        repeated = {k for k, n in counts.items() if n > 1}
        print(f"\nworker kill: in flight at kill={len(in_flight)} repeated={len(repeated)} "
              f"executions={sum(counts.values())} distinct={len(counts)}")
        # Only what the dead worker had started (and not finished) is run again, and only once more.
        assert repeated <= in_flight, sorted(repeated - in_flight)
        assert all(n <= 2 for n in counts.values()), counts
        stats = exec_stats(log, [kill_time])
        assert stats.repeated == len(repeated)
    finally:
        client.close()
        w1.kill()


def test_sigterm_midload_then_restart_resumes(server_factory: Callable[..., DurahubServer], tmp_path: Path) -> None:
    srv = server_factory()
    log = tmp_path / "activities.log"
    worker = _worker(srv, tmp_path, "worker", log, step=0.3)
    client = make_client(srv)
    try:
        wait_until(lambda: srv.connected_workers() >= 1, timeout=30, message="worker never connected")
        ids = {}
        n = scale(40, 200)
        for i in range(n):
            iid = f"fl-term-{i}"
            client.schedule_new_workflow(faultlib.fl_chain, input=i, instance_id=iid)
            ids[iid] = i + 3
        wait_until(lambda: sum(1 for r in read_log(log) if r["ev"] == "end") >= n // 2, timeout=60,
                   message="activities never ran")
        assert srv.proc is not None
        t = time.monotonic()
        srv.stop(timeout=20)
        stop_seconds = time.monotonic() - t
        assert srv.proc.returncode == 0, f"SIGTERM exit code {srv.proc.returncode} (log: {srv.log_tail(20)})"
        done_before = sum(1 for r in read_log(log) if r["ev"] == "end")
        assert done_before < 3 * n, "everything finished before SIGTERM; the test proves nothing"
        assert "did not stop" not in srv.log_text()
        srv.start()
        for iid, want in ids.items():
            st = faultlib._retry(lambda iid=iid: client.wait_for_workflow_completion(iid, timeout_in_seconds=120))
            assert st is not None and st.runtime_status == wf.WorkflowStatus.COMPLETED, describe(st)
            assert json.loads(st.serialized_output) == want
            inst = ext_instance(srv.http_url, iid)
            assert inst is not None and not history_problems(inst), history_problems(inst or {"history": []})
        print(f"\nSIGTERM: stopped in {stop_seconds:.2f}s with {done_before}/{3 * n} steps done")
    finally:
        client.close()
        worker.stop()


def test_two_workers_compete_each_activity_runs_once(
    server_factory: Callable[..., DurahubServer], tmp_path: Path
) -> None:
    srv = server_factory()
    log = tmp_path / "activities.log"
    w1 = _worker(srv, tmp_path, "w1", log, step=0.05)
    w2 = _worker(srv, tmp_path, "w2", log, step=0.05)
    client = make_client(srv)
    try:
        wait_until(lambda: srv.connected_workers() >= 2, timeout=30, message="workers never connected")
        ids = {}
        for i in range(scale(40, 400)):
            iid = f"fl-two-{i}"
            if i % 2:
                client.schedule_new_workflow(faultlib.fl_chain, input=i, instance_id=iid)
                ids[iid] = i + 3
            else:
                client.schedule_new_workflow(faultlib.fl_fanout, input=i, instance_id=iid)
                ids[iid] = 5 * i + 15
        for iid, want in ids.items():
            st = client.wait_for_workflow_completion(iid, timeout_in_seconds=120)
            assert st is not None and st.runtime_status == wf.WorkflowStatus.COMPLETED, describe(st)
            assert json.loads(st.serialized_output) == want
            inst = ext_instance(srv.http_url, iid)
            assert inst is not None and not history_problems(inst)
        recs = read_log(log)
        counts: dict[str, int] = {}
        pids: set[int] = set()
        for r in recs:
            if r["ev"] == "start":
                counts[r["k"]] = counts.get(r["k"], 0) + 1
                pids.add(r["pid"])
        assert len(pids) == 2, "both workers should have run activities"
        dup = {k: n for k, n in counts.items() if n > 1}
        assert not dup, f"no faults, yet activities ran more than once: {dup}"
    finally:
        client.close()
        w1.stop()
        w2.stop()
