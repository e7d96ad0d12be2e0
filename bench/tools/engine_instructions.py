"""Engine instructions per workflow: the engine's CPU cost counted by valgrind (callgrind), not timed.

    python -m bench.tools.engine_instructions [--workflow order|chain] [--n 100] [--concurrency 16]
    python -m bench.tools.engine_instructions --src /tmp/parent/src --src src    # A/B, interleaved A B B A
    python -m bench.tools.engine_instructions --tracing-ab --worker    # tracing off vs on, engine and SDK worker

Timing the engine's CPU per workflow (`bench`, `bench.tools.ab`) swings by tens of percent when other work
shares the machine; an instruction count barely moves with load, so small engine changes can be judged on a
busy machine. `durahub serve` runs under `valgrind --tool=callgrind` with instrumentation off through start-up;
a warm-up of workflows runs uncounted, then counting is switched on (`callgrind_control -i on`) for `--n`
workflows started `--concurrency` at a time by an SDK client against the SDK worker (bench.apps.dapr_app), and
the instructions counted are divided by `--n`. `--worker` counts the SDK worker's instructions too (what a
2-core machine's throughput depends on is both); `--tracing` has the engine export its spans over OTLP to a
counting sink (bench.tools.otlp_sink), `--tracing-ab` compares tracing off and on. What this does not see: time spent waiting (fsync, the
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


def _callgrind(out: Path) -> list[str]:
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]


def _total(directory: Path, prefix: str) -> int:
    totals = [int(m.group(1)) for f in directory.glob(f"{prefix}*")
              for m in re.finditer(r"^(?:summary|totals): (\d+)", f.read_text(errors="replace"), re.M)]
    if not totals:
        raise RuntimeError(f"callgrind wrote no totals for {prefix}")
    return max(totals)


def measure(src: Path, workflow: str, n: int, concurrency: int, warmup: int, db: str, tracing: bool = False,
            count_worker: bool = False) -> dict[str, float]:
    """Instructions the engine (source tree `src`), and the worker if `count_worker`, execute per workflow."""
    name, value = WORKFLOWS[workflow]
    env = dict(os.environ, PYTHONPATH=f"{src}{os.pathsep}{REPO}", PYTHONUNBUFFERED="1")
    with tempfile.TemporaryDirectory(prefix="durahub-instr-") as tmp:
        out = Path(tmp) / "callgrind.out"
        grpc_port, http_port = common.free_port(), common.free_port()
        database = str(Path(tmp) / "durahub.db") if db == "sqlite" else db
        engine_log = open(Path(tmp) / "engine.log", "wb")  # noqa: SIM115
        worker_log = open(Path(tmp) / "worker.log", "wb")  # noqa: SIM115
        sink = None
        tracing_args: list[str] = []
        if tracing:
            sink = subprocess.Popen([sys.executable, "-m", "bench.tools.otlp_sink", "--count-file",
                                     str(Path(tmp) / "spans")], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                    env=env, cwd=str(REPO))
            assert sink.stdout is not None
            ready = sink.stdout.readline().split()
            if ready[:1] != [b"SINK-READY"]:
                raise RuntimeError(f"OTLP sink did not start: {ready!r}")
            tracing_args = ["--otlp-endpoint", f"127.0.0.1:{int(ready[1])}"]
        engine = subprocess.Popen(
            [*_callgrind(out), sys.executable, "-m", "durahub", "serve", "--grpc-port", str(grpc_port),
             "--http-port", str(http_port), "--db", database, "--log-level", "warning", *tracing_args],
            stdout=engine_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=dict(env, DURAHUB_METRICS_PORT="0"), cwd=str(REPO))
        worker = None
        try:
            common.wait_http(f"http://127.0.0.1:{http_port}/v1.0/healthz", proc=engine, timeout=600)
            worker = subprocess.Popen(
                [*(_callgrind(Path(tmp) / "worker.out") if count_worker else []), sys.executable, "-m",
                 "bench.apps.dapr_app", "--port", str(grpc_port)],
                stdout=subprocess.PIPE, stderr=worker_log, stdin=subprocess.DEVNULL, env=env, cwd=str(REPO))
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
            counted = [engine.pid] + ([worker.pid] if count_worker else [])
            for pid in counted:
                _callgrind_control("--instr=on", str(pid))
            run(n)
            for pid in counted:
                _callgrind_control("--instr=off", str(pid))
        finally:
            if worker is not None:
                worker.send_signal(signal.SIGTERM)
                worker.wait(120)
            engine.send_signal(signal.SIGTERM)
            engine.wait(300)
            engine_log.close()
            worker_log.close()
            if sink is not None:
                sink.send_signal(signal.SIGTERM)
                sink.wait(60)
        result = {"engine": _total(Path(tmp), "callgrind.out") / n}
        if count_worker:
            result["worker"] = _total(Path(tmp), "worker.out") / n
        return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--src", action="append", default=[], help="source tree(s) to measure (default: src); "
                   "two trees are measured interleaved (A B B A ...)")
    p.add_argument("--workflow", choices=sorted(WORKFLOWS), default="order")
    p.add_argument("--n", type=int, default=100, help="workflows counted")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--rounds", type=int, default=1, help="measurements per variant")
    p.add_argument("--db", default="sqlite", help="sqlite (a temp file) or a PostgreSQL URL")
    p.add_argument("--tracing", action="store_true", help="the engine exports spans to a counting OTLP sink")
    p.add_argument("--tracing-ab", action="store_true", help="compare tracing off (A) and on (B), one tree")
    p.add_argument("--worker", action="store_true", help="count the SDK worker's instructions too")
    args = p.parse_args(argv)
    trees = [Path(s).resolve() for s in (args.src or [str(REPO / "src")])]
    if args.tracing_ab:
        if len(trees) != 1:
            p.error("--tracing-ab compares one source tree with tracing off and on")
        variants = [(trees[0], False), (trees[0], True)]
    else:
        variants = [(t, args.tracing) for t in trees]
    if len(variants) > 2:
        p.error("at most two variants (A/B)")
    order = [v for r in range(args.rounds) for v in (variants if r % 2 == 0 else variants[::-1])]
    results: dict[tuple[Path, bool], list[dict[str, float]]] = {v: [] for v in variants}
    for variant in order:
        began = time.monotonic()
        per = measure(variant[0], args.workflow, args.n, args.concurrency, args.warmup, args.db,
                      tracing=variant[1], count_worker=args.worker)
        results[variant].append(per)
        counts = ", ".join(f"{who} {value / 1e6:.2f} M" for who, value in per.items())
        print(f"{_name(variant)}: {counts} instructions per {args.workflow} workflow "
              f"({time.monotonic() - began:.0f} s)", flush=True)
    medians = {v: {who: statistics.median(r[who] for r in rs) for who in rs[0]} for v, rs in results.items()}
    for variant, per in medians.items():
        print(f"median {_name(variant)}: " + ", ".join(f"{who} {value / 1e6:.2f} M" for who, value in per.items()))
    if len(variants) == 2:
        a, b = (medians[v] for v in variants)
        ratios = {who: b[who] / a[who] for who in a}
        if len(a) > 1:
            ratios["engine+worker"] = sum(b.values()) / sum(a.values())
        print("B/A: " + ", ".join(f"{who} {ratio:.3f}x" for who, ratio in ratios.items()))
    return 0


def _name(variant: tuple[Path, bool]) -> str:
    return f"{variant[0]}{' (tracing on)' if variant[1] else ''}"


if __name__ == "__main__":
    raise SystemExit(main())
