"""Fault-injection benchmark, from the repository root in the durahub venv:
`python -m bench.faults [--kills 20] [--load 2000] [--backend sqlite|postgres]`.

Runs the reliability workload of tests/reliability (testsupport/faultlib.py) against a fresh durahub server: kill -9 / restart of the
engine at random moments under a mixed workload (chains, fan-outs, timers, external events, child workflows,
continue-as-new, retries), kill -9 of the worker mid-activity, then a load phase (workflows waiting on timers
and events, an event burst, concurrent starts). Prints a summary table; exits 1 if anything was lost or
recorded twice.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=20, help="engine kill -9 / restart cycles")
    parser.add_argument("--initial", type=int, default=3, help="workflows of each kind before the first kill")
    parser.add_argument("--load", type=int, default=2000, help="workflows waiting at once (0 skips the load phase)")
    parser.add_argument("--events", type=int, default=None, help="events in the burst (default: --load)")
    parser.add_argument("--starts", type=int, default=300, help="concurrent SDK starts")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default=os.environ.get("DURAHUB_TEST_BACKEND",
                                                                                         "sqlite"))
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    os.environ["DURAHUB_TEST_BACKEND"] = args.backend
    os.environ.setdefault("DAPR_API_TIMEOUT_SECONDS", "60")

    # After DAPR_API_TIMEOUT_SECONDS is set: the SDK reads it when imported.
    from testsupport import faultlib
    from testsupport.process import wait_until
    from testsupport.sdk import make_client
    from testsupport.server import DurahubServer

    tmp = Path(tempfile.mkdtemp(prefix="durahub-faults-"))
    rows: list[tuple[str, object]] = [("backend", args.backend)]
    ok = True

    # 1. Engine kill -9 cycles.
    srv = DurahubServer(tmp / "kill.db", tmp / "kill.log", backend=args.backend)
    srv.start()
    log = tmp / "activities.log"
    worker = faultlib.WorkerProcess(srv.port, log, tmp / "worker.out").start()
    client = make_client(srv)
    try:
        wait_until(lambda: srv.connected_workers() >= 1, timeout=30)
        report = faultlib.run_kill_workload(srv, client, log, kills=args.kills, initial_per_kind=args.initial,
                                            seed=args.seed, finish_timeout=300)
    finally:
        client.close()
        worker.stop()
        srv.dispose()
    rows += faultlib.report_rows(report)
    ok &= not report.wrong and report.duplicate_results == 0 and report.events_lost == 0 \
        and report.events_duplicated == 0 and not report.history_problems and not report.exec.unexplained
    for line in (report.wrong + report.history_problems + report.exec.unexplained)[:20]:
        print("  problem:", line, file=sys.stderr)

    # 2. Worker kill -9 mid-activity.
    srv = DurahubServer(tmp / "worker.db", tmp / "worker.log", backend=args.backend)
    srv.start()
    wlog = tmp / "worker-activities.log"
    w1 = faultlib.WorkerProcess(srv.port, wlog, tmp / "w1.out", step_seconds=2.0).start()
    client = make_client(srv)
    try:
        wait_until(lambda: srv.connected_workers() >= 1, timeout=30)
        ids = [client.schedule_new_workflow(faultlib.fl_fanout, input=i, instance_id=f"bw-{i}") for i in range(10)]
        wait_until(lambda: sum(r["ev"] == "start" for r in faultlib.read_log(wlog)) >= 10, timeout=30)
        w1.kill()
        kill_time = time.time()
        recs = faultlib.read_log(wlog)
        in_flight = {r["k"] for r in recs if r["ev"] == "start"} - {r["k"] for r in recs if r["ev"] == "end"}
        w2 = faultlib.WorkerProcess(srv.port, wlog, tmp / "w2.out").start()
        done = 0
        for i, iid in enumerate(ids):
            st = client.wait_for_workflow_completion(iid, timeout_in_seconds=120)
            done += st is not None and st.serialized_output == str(5 * i + 15)
        w2.stop()
        ws = faultlib.exec_stats(wlog, [kill_time])
        rows += [("worker kill -9: workflows completed / expected", f"{done} / {len(ids)}"),
                 ("worker kill -9: repeated executions / in flight", f"{ws.repeated} / {len(in_flight)}")]
        ok &= done == len(ids) and ws.repeated <= len(in_flight)
    finally:
        client.close()
        srv.dispose()

    # 3. Load.
    if args.load:
        srv = DurahubServer(tmp / "load.db", tmp / "load.log", backend=args.backend)
        srv.start()
        try:
            figures = faultlib.run_load(srv, tmp, waiting=args.load, events=args.events or args.load, starts=args.starts)
            rows += [(f"load: {k}", v) for k, v in figures.items()]
        except AssertionError as e:
            ok = False
            rows.append(("load", f"FAILED: {e}"))
        finally:
            srv.dispose()

    print(faultlib.format_table(rows))
    print(f"result: {'OK' if ok else 'FAILED'} (logs in {tmp})")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
