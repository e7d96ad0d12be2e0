"""How fast the dashboard is in a real browser (Playwright driving the system's Chromium).

    python bench/dashboard_bench.py                 # both measurements (about 5 minutes on the 2-core machine)
    python bench/dashboard_bench.py --part run --events 1000 --repeat 7
    python bench/dashboard_bench.py --part run --ab /tmp/parent/src   # A/B: the run page, two source trees

1. Run page: one workflow whose history has about `--events` events (steps of `--fan-out` parallel activities
   each, so its graph has that many branches at each step and a fan-in after it); the time
   from navigation to the run page drawn (header, waiting-on panel, timeline and graph: `main[data-loaded]`),
   median of `--repeat` fresh loads.
2. List: `--instances` instances (started in the engine in process, a batch at a time); the time to the first
   page of rows and the counts, the time a status-chip filter takes to show its rows (the instances wait,
   PENDING, with no worker), then a worker connects and runs them all: the time until the counts show them
   COMPLETED (or how many were, after `--burst-timeout`), and the longest the page's main thread was blocked
   meanwhile (the lag of a 50 ms timer; and the longest task the browser reported) while the burst of changes
   streams in; next to the lag of the same timer in an idle page, which is what the machine's load alone causes.

`--ab SRC` runs part 1 for the durahub source tree SRC (A, e.g. a `git worktree` of the parent commit) and for
this checkout's (B), each in its own process, interleaved A B B A ... `--rounds` times, and prints each one's
median and the B/A ratio: the machine is shared and noisy, so only a ratio measured this way means much.

Needs `pip install playwright` and Chromium at /usr/bin/chromium (or $DURAHUB_CHROMIUM); never runs
`playwright install`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
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
window.__longestTask = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__longestTask = Math.max(window.__longestTask, e.duration);
}).observe({ type: "longtask" });
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


def start_many(server: Server, count: int) -> float:
    """Start `count` instances in the engine in-process, many at once (the store commits concurrent starts in
    batches): seconds taken. Through the SDK or HTTP one at a time this took minutes for 10,000."""

    async def start_all() -> None:
        engine = server.engine
        for first in range(0, count, 500):
            await asyncio.gather(*(engine.start_instance(f"list-{i:05d}", "bench_list", json.dumps(str(i)))
                                   for i in range(first, min(first + 500, count))))

    t0 = time.perf_counter()
    assert server._loop is not None
    asyncio.run_coroutine_threadsafe(start_all(), server._loop).result()
    return time.perf_counter() - t0


def list_page(browser: Any, server: Server, base: str, count: int, burst_timeout: float) -> dict[str, float]:
    deadline = time.monotonic() + 60
    while httpx.get(f"{base}{API}/workers").json():  # the run page's worker must be gone: these wait, PENDING
        if time.monotonic() > deadline:
            sys.exit("the run page's worker did not disconnect")
        time.sleep(0.1)
    print(f"  ({count} instances started in {start_many(server, count):.1f} s)", flush=True)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.add_init_script(LAG_PROBE)
    t0 = time.perf_counter()
    page.goto(f"{base}/dashboard/?prefix=list-")  # the counts of these instances only
    page.wait_for_selector("tbody tr[data-instance]", timeout=120_000)
    page.wait_for_selector(f'button.chip[data-status="PENDING"][data-count="{count}"]', timeout=120_000)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    page.click('button.chip[data-status="PENDING"]')
    page.wait_for_url("**status=PENDING**")
    page.wait_for_selector('button.chip[data-status="PENDING"][aria-pressed="true"]', timeout=120_000)
    page.wait_for_selector("tbody tr[data-instance]", timeout=120_000)
    filtered = time.perf_counter() - t0
    print(f"list: {count} instances; first page and counts in {first * 1000:.0f} ms; a status filter in"
          f" {filtered * 1000:.0f} ms", flush=True)
    page.goto(f"{base}/dashboard/?prefix=list-")
    page.wait_for_selector("tbody tr[data-instance]", timeout=120_000)
    # The same probe in a page doing nothing, in its own renderer process: how late a timer runs anyway on this
    # (shared, loaded) machine, the floor under the list page's figure.
    idle = browser.new_page()
    idle.set_content("<p>idle</p>")
    idle.add_script_tag(content=LAG_PROBE)
    for probe in (page, idle):
        probe.evaluate("window.__maxLag = 0; window.__longestTask = 0")
    t0 = time.perf_counter()
    runtime = wf.WorkflowRuntime(host="127.0.0.1", port=str(server.grpc_port), maximum_thread_pool_workers=16)
    runtime.register_workflow(bench_list)
    runtime.start()
    done = count
    try:
        try:
            page.wait_for_selector(f'button.chip[data-status="COMPLETED"][data-count="{count}"]',
                                   timeout=burst_timeout * 1000)
        except Exception:  # Playwright's TimeoutError: report how far it got
            done = int(page.get_attribute('button.chip[data-status="COMPLETED"]', "data-count") or 0)
        burst = time.perf_counter() - t0
        lag, longest = page.evaluate("[window.__maxLag, window.__longestTask]")
        idle_lag = idle.evaluate("window.__maxLag")
    finally:
        runtime.shutdown()
    page.close()
    idle.close()
    return {"instances": count, "first_page_and_counts_s": first, "status_filter_s": filtered,
            "burst_s": burst, "burst_completed": done, "max_main_thread_lag_ms": lag, "longest_task_ms": longest,
            "idle_page_max_lag_ms": idle_lag}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Config(grpc_port=0, http_port=0, db=str(Path(tmp) / "bench.db"), sqlite_synchronous="normal",
                               log_level="warning"))
        server.start_in_thread()
        base = f"http://127.0.0.1:{server.http_port}"
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium(), headless=True,
                                            args=["--no-sandbox", "--disable-gpu"])
                if args.part in ("run", "both"):
                    run = out["run"] = run_page(browser, base, args.events, args.fan_out, server.grpc_port,
                                                args.repeat)
                    print(f"run page: {run['history_events']} history events drawn in {run['median_s'] * 1000:.0f}"
                          f" ms (median of {args.repeat}; max {run['max_s'] * 1000:.0f} ms)", flush=True)
                if args.part in ("list", "both"):
                    listing = out["list"] = list_page(browser, server, base, args.instances, args.burst_timeout)
                    ran = (f"counts showed all COMPLETED after {listing['burst_s']:.1f} s"
                           if listing["burst_completed"] == listing["instances"] else
                           f"only {listing['burst_completed']} COMPLETED after {listing['burst_s']:.1f} s")
                    print(f"list: then a worker ran them: {ran}; the page's main thread blocked at most"
                          f" {listing['max_main_thread_lag_ms']:.0f} ms meanwhile (longest task"
                          f" {listing['longest_task_ms']:.0f} ms; an idle page's timer lagged up to"
                          f" {listing['idle_page_max_lag_ms']:.0f} ms meanwhile)", flush=True)
                browser.close()
        finally:
            server.stop_thread()
    return out


def ab(args: argparse.Namespace) -> None:
    """Part 1 for tree A and this checkout (B), each in a subprocess, interleaved A B B A ..."""
    here = Path(__file__).resolve().parents[1]
    trees = {"A": str(Path(args.ab).resolve()), "B": str(here / "src")}
    medians: dict[str, list[float]] = {"A": [], "B": []}
    order = [t for r in range(args.rounds) for t in (("A", "B") if r % 2 == 0 else ("B", "A"))]
    for tree in order:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([trees[tree], str(here)])}
        cmd = [sys.executable, __file__, "--part", "run", "--events", str(args.events), "--fan-out",
               str(args.fan_out), "--repeat", str(args.repeat), "--json"]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])["run"]
        medians[tree].append(result["median_s"])
        print(f"  {tree}: {result['history_events']} events, median {result['median_s'] * 1000:.0f} ms"
              f" (load {os.getloadavg()[0]:.1f})", flush=True)
    a, b = statistics.median(medians["A"]), statistics.median(medians["B"])
    print(f"run page A/B ({args.rounds} rounds): A {a * 1000:.0f} ms, B {b * 1000:.0f} ms, B/A {b / a:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["run", "list", "both"], default="both")
    parser.add_argument("--events", type=int, default=1000, help="history events of the run page's workflow")
    parser.add_argument("--instances", type=int, default=10_000, help="instances for the list measurement")
    parser.add_argument("--fan-out", type=int, default=5, help="parallel activities per step of that workflow")
    parser.add_argument("--repeat", type=int, default=5, help="run page loads to take the median of")
    parser.add_argument("--burst-timeout", type=float, default=600, help="seconds to let the worker run the list's"
                                                                          " instances")
    parser.add_argument("--ab", metavar="SRC", help="A/B the run page against this durahub source tree")
    parser.add_argument("--rounds", type=int, default=2, help="A/B rounds (each runs A and B once)")
    parser.add_argument("--json", action="store_true", help="end with the figures as one JSON line")
    args = parser.parse_args(argv)
    if args.ab:
        ab(args)
        return 0
    out = measure(args)
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
