"""How fast the dashboard is in a real browser (Playwright driving the system's Chromium).

    python bench/dashboard_bench.py                 # both measurements
    python bench/dashboard_bench.py --instances 2000 --events 1000 --repeat 3

1. Run page: one workflow whose history has about `--events` events (steps of `--fan-out` parallel activities
   each, so its graph has that many branches at each step and a fan-in after it); the time
   from navigation to the run page drawn (header, waiting-on panel, timeline and graph: `main[data-loaded]`),
   median of `--repeat` fresh loads.
2. List: `--instances` instances; the time to the first page of rows and the counts, the time a status-chip
   filter takes to show its rows (the instances wait, PENDING, with no worker), then a worker connects and runs
   them all: the time until the counts show them COMPLETED, and the longest the page's main thread was blocked
   meanwhile (the lag of a 50 ms timer) while the burst of changes streams in.

Needs `pip install playwright` and Chromium at /usr/bin/chromium (or $DURAHUB_CHROMIUM); never runs
`playwright install`.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import dapr.ext.workflow as wf
import httpx

from durahub.config import Config
from durahub.server import Server

API = "/durahub/v1"


def work(ctx: wf.WorkflowActivityContext, n: int) -> int:
    return n + 1


def bench_list(ctx: wf.DaprWorkflowContext, value: str) -> str:
    return value


def batches_workflow(ctx: wf.DaprWorkflowContext, shape: dict[str, int]):
    total = 0
    for b in range(shape["batches"]):
        width = shape["width"]
        results = yield wf.when_all([ctx.call_activity(work, input=b * width + i) for i in range(width)])
        total += sum(results)
    return total


LAG_PROBE = """
window.__maxLag = 0;
(function tick(last) {
  setTimeout(() => { const now = performance.now(); window.__maxLag = Math.max(window.__maxLag, now - last - 50);
                     tick(now); }, 50);
})(performance.now());
"""


def chromium() -> str:
    path = os.environ.get("DURAHUB_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        sys.exit(f"no Chromium at {path}: apt-get install -y chromium")
    return path


def run_page(browser: Any, base: str, events: int, width: int, grpc_port: int, repeat: int) -> dict[str, float]:
    runtime = wf.WorkflowRuntime(host="127.0.0.1", port=str(grpc_port), maximum_thread_pool_workers=16)
    runtime.register_workflow(batches_workflow)
    runtime.register_activity(work)
    runtime.start()
    try:
        client = wf.DaprWorkflowClient(host="127.0.0.1", port=str(grpc_port))
        batches = max(1, round(events / (2 * width + 2)))  # per batch: scheduled and completed, and a turn
        client.schedule_new_workflow(batches_workflow, input={"batches": batches, "width": width},
                                     instance_id="bench-run")
        client.wait_for_workflow_completion("bench-run", timeout_in_seconds=300)
    finally:
        runtime.shutdown()
    history = len(httpx.get(f"{base}{API}/instances/bench-run").json()["history"])
    times = []
    for _ in range(repeat):
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        start = time.perf_counter()
        page.goto(f"{base}/dashboard/instances/bench-run")
        page.wait_for_selector("main[data-loaded]", timeout=60_000)
        times.append(time.perf_counter() - start)
        page.close()
    return {"history_events": history, "median_s": statistics.median(times), "max_s": max(times)}


def start_many(base: str, count: int) -> None:
    def start(i: int) -> None:
        httpx.post(f"{base}{API}/instances", json={"workflow_name": "bench_list", "instance_id": f"list-{i:05d}",
                                                   "input": str(i)}, timeout=60).raise_for_status()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(start, range(count)))


def list_page(browser: Any, base: str, count: int, grpc_port: int) -> dict[str, float]:
    deadline = time.monotonic() + 60
    while httpx.get(f"{base}{API}/workers").json():  # the run page's worker must be gone: these wait, PENDING
        if time.monotonic() > deadline:
            sys.exit("the run page's worker did not disconnect")
        time.sleep(0.1)
    start_many(base, count)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.add_init_script(LAG_PROBE)
    t0 = time.perf_counter()
    page.goto(f"{base}/dashboard/?prefix=list-")  # the counts of these instances only
    page.wait_for_selector("tbody tr[data-instance]")
    page.wait_for_selector(f'button.chip[data-status="PENDING"][data-count="{count}"]', timeout=60_000)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    page.click('button.chip[data-status="PENDING"]')
    page.wait_for_url("**status=PENDING**")
    page.wait_for_selector('button.chip[data-status="PENDING"][aria-pressed="true"]')
    page.wait_for_selector("tbody tr[data-instance]")
    filtered = time.perf_counter() - t0
    page.goto(f"{base}/dashboard/?prefix=list-")
    page.wait_for_selector("tbody tr[data-instance]")
    page.evaluate("window.__maxLag = 0")
    t0 = time.perf_counter()
    runtime = wf.WorkflowRuntime(host="127.0.0.1", port=str(grpc_port))
    runtime.register_workflow(bench_list)
    runtime.start()
    try:
        page.wait_for_selector(f'button.chip[data-status="COMPLETED"][data-count="{count}"]', timeout=600_000)
        burst = time.perf_counter() - t0
        lag = page.evaluate("window.__maxLag")
    finally:
        runtime.shutdown()
    page.close()
    return {"instances": count, "first_page_and_counts_s": first, "status_filter_s": filtered,
            "burst_until_counts_right_s": burst, "max_main_thread_lag_ms": lag}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000, help="history events of the run page's workflow")
    parser.add_argument("--instances", type=int, default=10_000, help="instances for the list measurement")
    parser.add_argument("--fan-out", type=int, default=5, help="parallel activities per step of that workflow")
    parser.add_argument("--repeat", type=int, default=5, help="run page loads to take the median of")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Config(grpc_port=0, http_port=0, db=str(Path(tmp) / "bench.db"), sqlite_synchronous="normal",
                               log_level="warning"))
        server.start_in_thread()
        base = f"http://127.0.0.1:{server.http_port}"
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium(), headless=True,
                                            args=["--no-sandbox", "--disable-gpu"])
                run = run_page(browser, base, args.events, args.fan_out, server.grpc_port, args.repeat)
                print(f"run page: {run['history_events']} history events drawn in {run['median_s'] * 1000:.0f} ms"
                      f" (median of {args.repeat}; max {run['max_s'] * 1000:.0f} ms)", flush=True)
                listing = list_page(browser, base, args.instances, server.grpc_port)
                print(f"list: {listing['instances']} instances; first page and counts in"
                      f" {listing['first_page_and_counts_s'] * 1000:.0f} ms; a status filter in"
                      f" {listing['status_filter_s'] * 1000:.0f} ms; then a worker ran them all: counts showed all"
                      f" COMPLETED after {listing['burst_until_counts_right_s']:.1f} s, the page's main thread blocked"
                      f" at most {listing['max_main_thread_lag_ms']:.0f} ms meanwhile", flush=True)
                browser.close()
        finally:
            server.stop_thread()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
