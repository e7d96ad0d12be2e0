"""Load: many workflows waiting at once on timers and events, a burst of raised events, many concurrent
starts. Reports the server's peak RSS (VmHWM) and open fds; nothing may be dropped.

CI size by default; DURAHUB_FAULTS_LONG=1 for 10,000 / 10,000 / 1,000.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import faultlib
import httpx
import pytest
from faultlib import PeakSampler, WorkerProcess, ext_list, proc_status, scale
from helpers import DurahubServer, make_client, wait_until

pytestmark = [pytest.mark.timeout(1800)]


def run_load(srv: DurahubServer, tmp_path: Path, waiting: int, events: int, starts: int) -> dict[str, object]:
    """Returns the figures; asserts nothing was dropped."""
    assert srv.proc is not None
    pid = srv.proc.pid
    worker = WorkerProcess(srv.port, tmp_path / "activities.log", tmp_path / "worker.out").start()
    client = make_client(srv)
    http = httpx.Client(base_url=srv.http_url, timeout=60, limits=httpx.Limits(max_connections=32))
    figures: dict[str, object] = {}
    try:
        wait_until(lambda: srv.connected_workers() >= 1, timeout=30, message="worker never connected")
        base_fds = proc_status(pid).get("fds", 0)
        with PeakSampler(pid) as peak, ThreadPoolExecutor(32) as pool:
            # 1. `waiting` workflows wait at once: half on a timer, half on an event. HTTP starts do not wait.
            t0 = time.monotonic()
            n_timer = waiting // 2

            per_waiter = max(1, -(-events // max(1, waiting - n_timer)))  # events per event-waiting workflow

            def start(i: int) -> None:
                if i < n_timer:
                    r = http.post(f"/v1.0/workflows/dapr/fl_waiter/start?instanceID=ld-{i}",
                                  json={"timer": 20.0 + (i % 10)})
                else:
                    r = http.post(f"/v1.0/workflows/dapr/fl_events/start?instanceID=ld-{i}", json=per_waiter)
                assert r.status_code == 202, r.text

            list(pool.map(start, range(waiting)))

            # Started = had its first turn. On a slow machine the first timers (20 s) can fire before the
            # last workflow starts, so a finished timer workflow counts as started too.
            def by_status() -> dict[str, int]:
                counts: dict[str, int] = {}
                for row in ext_list(srv.http_url, instance_id_prefix="ld-"):
                    counts[row["status"]] = counts.get(row["status"], 0) + 1
                return counts

            def all_started() -> bool:
                counts = by_status()
                return counts.get("RUNNING", 0) + counts.get("COMPLETED", 0) == waiting

            wait_until(all_started, timeout=600, interval=1.0,
                       message=lambda: f"not every workflow started: {by_status()}")
            figures["waiting started (s)"] = round(time.monotonic() - t0, 1)
            figures["fds while all wait"] = proc_status(pid).get("fds", 0)

            # 2. A burst of events, spread over the event-waiting workflows.
            t1 = time.monotonic()
            event_ids = [f"ld-{i}" for i in range(n_timer, waiting)]
            burst = [(iid, k) for k in range(per_waiter) for iid in event_ids]

            def raise_(target: tuple[str, int]) -> None:
                r = http.post(f"/v1.0/workflows/dapr/{target[0]}/raiseEvent/e", json=f"{target[0]}#{target[1]}")
                assert r.status_code == 202, r.text

            list(pool.map(raise_, burst))
            figures["events raised (s)"] = round(time.monotonic() - t1, 1)

            # 3. Concurrent SDK starts (each blocks until its first turn committed).
            t2 = time.monotonic()

            def sdk_start(i: int) -> str:
                return client.schedule_new_workflow(faultlib.fl_noop, input=i, instance_id=f"ldstart-{i}")

            ids = list(pool.map(sdk_start, range(starts)))
            figures["concurrent starts (s)"] = round(time.monotonic() - t2, 1)

            # Everything finishes, nothing dropped.
            def done() -> bool:
                left = ext_list(srv.http_url, instance_id_prefix="ld", status=["RUNNING", "PENDING"])
                return not left

            wait_until(done, timeout=900, interval=1.0, message="load did not drain")
            figures["drained after (s)"] = round(time.monotonic() - t0, 1)
        rows = {r["instance_id"]: r for r in ext_list(srv.http_url, instance_id_prefix="ld")}
        for i in range(waiting):
            r = rows[f"ld-{i}"]
            assert r["status"] == "COMPLETED", r
            out = json.loads(r["output"])
            if i < n_timer:
                assert out == "timer", r
            else:  # concurrent raises to one instance may arrive in either order; none lost, none twice
                assert sorted(out) == [f"ld-{i}#{k}" for k in range(per_waiter)], r
        for i, iid in enumerate(ids):
            assert rows[iid]["status"] == "COMPLETED" and json.loads(rows[iid]["output"]) == i
        figures["peak RSS (MiB)"] = round(peak.max_rss_kib / 1024, 1)
        figures["max open fds (baseline)"] = f"{peak.max_fds} ({base_fds})"
        figures["fds after"] = proc_status(pid).get("fds", 0)
        figures["workflows"] = waiting + starts
        figures["events"] = len(burst)
        return figures
    finally:
        http.close()
        client.close()
        worker.stop()


def test_load_waiting_burst_and_concurrent_starts(server_factory: Callable[..., DurahubServer], tmp_path: Path) -> None:
    srv = server_factory()
    figures = run_load(srv, tmp_path, waiting=scale(2000, 10_000), events=scale(2000, 10_000),
                       starts=1000)
    print("\n" + faultlib.format_table(list(figures.items())))
    max_fds = int(str(figures["max open fds (baseline)"]).split()[0])
    # Bounded: memory and file handles do not grow with the number of waiting workflows.
    assert max_fds < 400, figures
    assert float(str(figures["peak RSS (MiB)"])) < 1024, figures
