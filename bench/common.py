"""Stdlib-only helpers shared by the orchestrator and every driver (each driver runs in its own venv).

- process accounting from /proc: RSS and CPU seconds of a pid (and its children);
- percentiles, a free port, waiting for an HTTP endpoint or a quiet (idle) process;
- the one-line JSON protocol: a driver prints ``BENCH-RESULT {json}`` as its last line.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent  # the repository root: drivers run from it, with it on PYTHONPATH
RESULT_PREFIX = "BENCH-RESULT "
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# Workload sizes: the full sizes, and the smoke sizes used by the test suite.
FULL_SIZES: dict[str, Any] = {
    "order_n": 2000,  # instances per concurrency level
    "order_levels": [16, 0],  # closed-loop in-flight limits; 0 = all started as fast as possible
    "loop_budget_s": 60.0,  # a closed loop stops starting new workflows after this (slow systems)
    "latency_n": 200,  # sequential start-and-wait
    "fanout": [1000, 10000],
    "chain": 500,
    "idle_n": 10000,
    "idle_window": 10.0,
    "idle_start_budget_s": 90.0,  # stop starting waiting workflows after this; the table shows how many
}
SMOKE_SIZES: dict[str, Any] = {
    "order_n": 20,
    "order_levels": [4, 0],
    "latency_n": 5,
    "fanout": [20],
    "chain": 10,
    "idle_n": 20,
    "idle_window": 1.0,
    "loop_budget_s": 30.0,
    "idle_start_budget_s": 20.0,
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    xs = sorted(values)
    k = max(0, min(len(xs) - 1, int(round(q / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text().split()
            out.extend(int(c) for c in text)
    except OSError:
        pass
    return out


def tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo.extend(children(p))
    return pids


def cpu_seconds(pid: int, with_children: bool = False) -> float:
    """utime+stime of a process (and its live descendants) in seconds."""
    total = 0.0
    for p in tree(pid) if with_children else [pid]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def rss_mb(pid: int, with_children: bool = False) -> float:
    total = 0
    for p in tree(pid) if with_children else [pid]:
        try:
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * PAGE
        except OSError:
            continue
    return total / 1e6


class CpuMeter:
    """CPU seconds used by some pids between start() and stop()."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.t0 = 0.0
        self.c0: dict[str, float] = {}

    def start(self) -> CpuMeter:
        self.t0 = time.perf_counter()
        self.c0 = {k: cpu_seconds(p) for k, p in self.pids.items()}
        return self

    def stop(self) -> dict[str, float]:
        return {f"cpu_{k}_s": round(cpu_seconds(p) - self.c0[k], 3) for k, p in self.pids.items()}


def wait_quiet(pids: Iterable[int], threshold: float = 0.05, settle: float = 1.0, timeout: float = 60.0) -> float:
    """Wait until the pids together use < threshold of a core over `settle` seconds; returns the wait
    (>= timeout: they never went quiet, and the idle sample is taken anyway)."""
    pids = list(pids)
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        c0 = sum(cpu_seconds(p) for p in pids)
        time.sleep(settle)
        if sum(cpu_seconds(p) for p in pids) - c0 < threshold * settle:
            break
    return time.monotonic() - t0


def idle_sample(pids: dict[str, int], window: float) -> dict[str, float]:
    """RSS now and the CPU share (percent of one core) each pid uses over `window` seconds."""
    c0 = {k: cpu_seconds(p) for k, p in pids.items()}
    time.sleep(window)
    out: dict[str, float] = {}
    for k, p in pids.items():
        out[f"rss_{k}_mb"] = round(rss_mb(p), 1)
        out[f"idle_cpu_{k}_pct"] = round(100.0 * (cpu_seconds(p) - c0[k]) / window, 2)
    return out


def wait_http(url: str, timeout: float = 60.0, ok: Iterable[int] = (200, 204), proc: Any = None) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} while waiting for {url}")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as r:
                if r.status in ok:
                    return
                last = r.status
        except urllib.error.HTTPError as e:
            if e.code in ok:
                return
            last = e.code
        except OSError as e:
            last = e
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready after {timeout}s (last: {last!r})")


def wait_port(port: int, timeout: float = 60.0, proc: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} while waiting for port {port}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} not open after {timeout}s")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def emit(result: dict[str, Any]) -> None:
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_workloads(
    result: dict[str, Any], workloads: dict[str, Callable[[], dict[str, Any]]], selected: set[str] | None
) -> None:
    """Run each named workload, recording its figures or its error; never lets one failure end the run."""
    res = result.setdefault("results", {})
    errs = result.setdefault("errors", {})
    for name, fn in workloads.items():
        if selected and name.split(":")[0] not in selected:
            continue
        log(f"{result.get('system')}/{result.get('backend')}: {name}")
        try:
            res[name] = fn()
            log(f"  -> {res[name]}")
        except Exception as e:  # noqa: BLE001 - reported in the table
            errs[name] = f"{type(e).__name__}: {e}"[:300]
            log(f"  !! {errs[name]}")


def latency_stats(lat_s: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(1000 * percentile(lat_s, 50), 2),
        "p95_ms": round(1000 * percentile(lat_s, 95), 2),
        "p99_ms": round(1000 * percentile(lat_s, 99), 2),
    }


def closed_loop(n: int, concurrency: int, start_and_wait: Callable[[int], None],
                budget_s: float = 1e9) -> dict[str, float]:
    """`concurrency` threads each start-and-wait one workflow at a time until n have completed
    (or until budget_s has passed: then n is what completed)."""
    import threading

    lock = threading.Lock()
    counter = iter(range(n))
    lat: list[float] = []
    errors: list[BaseException] = []

    def loop() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None or errors or time.perf_counter() > deadline:
                return
            t = time.perf_counter()
            try:
                start_and_wait(i)
            except BaseException as e:  # noqa: BLE001 - re-raised below
                errors.append(e)
                return
            lat.append(time.perf_counter() - t)

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(min(concurrency, n))]
    t0 = time.perf_counter()
    deadline = t0 + budget_s
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    n = len(lat)
    return {"n": n, "wall_s": round(wall, 3), "wf_per_s": round(n / wall, 1), **latency_stats(lat)}


def burst(n: int, start: Callable[[int], Any], wait: Callable[[Any], None], threads: int = 8) -> dict[str, float]:
    """Start n workflows from `threads` threads as fast as they go, then wait for all of them."""
    from concurrent.futures import ThreadPoolExecutor

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        handles = list(pool.map(start, range(n)))
        started = time.perf_counter() - t0
        list(pool.map(wait, handles))
    wall = time.perf_counter() - t0
    return {"n": n, "wall_s": round(wall, 3), "wf_per_s": round(n / wall, 1), "start_s": round(started, 3)}

