"""Engine instructions per workflow: the engine's CPU cost counted by valgrind (callgrind), not timed.

    python -m bench.tools.engine_instructions [--workflow order|chain] [--n 100] [--concurrency 16]
    python -m bench.tools.engine_instructions --src /tmp/parent/src --src src    # A/B, interleaved A B B A

Timing the engine's CPU per workflow (`bench`, `bench.tools.ab`) swings by tens of percent when other work
shares the machine; an instruction count barely moves with load, so small engine changes can be judged on a
busy machine. `durahub serve` runs under `valgrind --tool=callgrind` with instrumentation off through start-up;
a warm-up of workflows runs uncounted, then counting is switched on (`callgrind_control -i on`) for `--n`
workflows started `--concurrency` at a time by an SDK client against the SDK worker (bench.apps.dapr_app), and
the instructions counted are divided by `--n`. What this does not see: time spent waiting (fsync, the
network), and the cost of instructions that miss caches. Needs Debian's valgrind.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import dapr.ext.workflow as wf

from bench import common
from bench.apps.dapr_app import CHAIN, ORDER
from bench.common import REPO

WORKFLOWS = {"order": (ORDER, 1), "chain": (CHAIN, 20)}


def _callgrind_control(*args: str) -> str:
    return subprocess.run(["callgrind_control", *args], check=True, capture_output=True, text=True).stdout


def measure(src: Path, workflow: str, n: int, concurrency: int, warmup: int, db: str) -> float:
    """Instructions the engine (source tree `src`) executes per workflow."""
    name, value = WORKFLOWS[workflow]
    env = dict(os.environ, PYTHONPATH=f"{src}{os.pathsep}{REPO}", PYTHONUNBUFFERED="1")
    with tempfile.TemporaryDirectory(prefix="durahub-instr-") as tmp:
        out = Path(tmp) / "callgrind.out"
        grpc_port, http_port = common.free_port(), common.free_port()
        database = str(Path(tmp) / "durahub.db") if db == "sqlite" else db
        engine_log = open(Path(tmp) / "engine.log", "wb")  # noqa: SIM115
        engine = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
             sys.executable, "-m", "durahub", "serve", "--grpc-port", str(grpc_port), "--http-port", str(http_port),
             "--db", database, "--metrics-port", "0", "--log-level", "warning"],
            stdout=engine_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=str(REPO))
        worker = None
        try:
            common.wait_http(f"http://127.0.0.1:{http_port}/v1.0/healthz", proc=engine, timeout=600)
            worker = subprocess.Popen([sys.executable, "-m", "bench.apps.dapr_app", "--port", str(grpc_port)],
                                      stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, cwd=str(REPO))
            assert worker.stdout is not None
            if b"WORKER-READY" not in worker.stdout.readline():
                raise RuntimeError("the worker did not start")
            client = wf.DaprWorkflowClient(host="127.0.0.1", port=str(grpc_port))

            def run(count: int) -> None:
                def one(_: int) -> None:
                    iid = client.schedule_new_workflow(name, input=value, instance_id=uuid.uuid4().hex)
                    state = client.wait_for_workflow_completion(iid, timeout_in_seconds=600)
                    if state is None or state.runtime_status != wf.WorkflowStatus.COMPLETED:
                        raise RuntimeError(f"{iid} ended {state.runtime_status if state else None}")

                with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
                    list(pool.map(one, range(count)))

            run(warmup)
            _callgrind_control("--instr=on", str(engine.pid))
            run(n)
            _callgrind_control("--instr=off", str(engine.pid))
        finally:
            if worker is not None:
                worker.send_signal(signal.SIGTERM)
                worker.wait(60)
            engine.send_signal(signal.SIGTERM)
            engine.wait(300)
            engine_log.close()
        totals = [int(m.group(1)) for f in Path(tmp).glob("callgrind.out*")
                  for m in re.finditer(r"^(?:summary|totals): (\d+)", f.read_text(errors="replace"), re.M)]
        if not totals:
            raise RuntimeError(f"callgrind wrote no totals; engine log:\n{(Path(tmp) / 'engine.log').read_text()}")
        return max(totals) / n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--src", action="append", default=[], help="source tree(s) to measure (default: src); "
                   "two trees are measured interleaved (A B B A ...)")
    p.add_argument("--workflow", choices=sorted(WORKFLOWS), default="order")
    p.add_argument("--n", type=int, default=100, help="workflows counted")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--rounds", type=int, default=1, help="measurements per tree")
    p.add_argument("--db", default="sqlite", help="sqlite (a temp file) or a PostgreSQL URL")
    args = p.parse_args(argv)
    trees = [Path(s).resolve() for s in (args.src or [str(REPO / "src")])]
    order = [t for r in range(args.rounds) for t in (trees if r % 2 == 0 else trees[::-1])]
    results: dict[Path, list[float]] = {t: [] for t in trees}
    for tree in order:
        began = time.monotonic()
        per = measure(tree, args.workflow, args.n, args.concurrency, args.warmup, args.db)
        results[tree].append(per)
        print(f"{tree}: {per / 1e6:.2f} M instructions per {args.workflow} workflow "
              f"({time.monotonic() - began:.0f} s)", flush=True)
    medians = {t: statistics.median(v) for t, v in results.items()}
    for tree, value in medians.items():
        print(f"median {tree}: {value / 1e6:.2f} M instructions per workflow")
    if len(trees) == 2:
        print(f"B/A: {medians[trees[1]] / medians[trees[0]]:.3f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
