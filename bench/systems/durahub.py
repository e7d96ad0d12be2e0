"""durahub driver: engine (`python -m durahub serve`), SDK worker (bench.apps.dapr_app) and this client, three processes.

    python -m bench.systems.durahub --db sqlite --synchronous full [--smoke] [--profile DIR] [--tracing]

--tracing: the engine exports its spans over OTLP/gRPC (`--otlp-endpoint`) to a counting sink
(bench.tools.otlp_sink, its own process); the result's `spans_received` is what the sink got.

Runs in the durahub virtualenv (.venv19); prints one BENCH-RESULT line.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

os.environ.setdefault("DAPR_API_TIMEOUT_SECONDS", "600")

import dapr.ext.workflow as wf  # noqa: E402

from bench import common  # noqa: E402
from bench.apps.dapr_app import CHAIN, FANOUT, ORDER, WAIT  # noqa: E402

REPO = common.REPO


def _psql(dsn: str, sql: str) -> None:
    subprocess.run(["psql", dsn, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True, capture_output=True,
                   timeout=60)


class Deployment:
    """Engine + worker subprocesses on a fresh database."""

    def __init__(self, backend: str, synchronous: str, workdir: Path, pg_admin: str,
                 profile: tuple[Path, str] | None = None, engines: int = 1, tracing: bool = False) -> None:
        self.backend = backend
        self.pg_admin = pg_admin
        self.pg_db: str | None = None
        if backend == "postgres":
            name = f"durahub_bench_{uuid.uuid4().hex[:10]}"
            _psql(pg_admin, f"CREATE DATABASE {name}")
            self.pg_db = name
            self.db = pg_admin.rsplit("/", 1)[0] + "/" + name
        else:
            self.db = str(workdir / "durahub.db")
        # DURAHUB_BENCH_SRC runs the engine from another source tree (A/B runs of two versions, bench/README.md).
        src = os.environ.get("DURAHUB_BENCH_SRC") or str(REPO / "src")
        env = dict(os.environ, PYTHONPATH=f"{src}{os.pathsep}{REPO}", PYTHONUNBUFFERED="1")
        # profile = (output prefix, site-packages holding yappi): run engine and worker under bench.tools.yappi_run
        self.profile_files: dict[str, Path] = {}
        wrap: dict[str, list[str]] = {"engine": [], "worker": []}
        if profile:
            prefix, site = profile
            env["PYTHONPATH"] += os.pathsep + site
            for k in wrap:
                self.profile_files[k] = Path(f"{prefix}-{k}.json")
                wrap[k] = ["-m", "bench.tools.yappi_run", str(self.profile_files[k])]
        # Several engines share one PostgreSQL database, each with its own worker; clients spread over them.
        self.engines: list[subprocess.Popen[bytes]] = []
        self.workers: list[subprocess.Popen[bytes]] = []
        self.clients: list[wf.DaprWorkflowClient] = []
        self.logs = []
        self.sink: subprocess.Popen[bytes] | None = None
        self.sink_count = workdir / "spans-received"
        tracing_args: list[str] = []
        if tracing:
            self.sink = subprocess.Popen(
                [sys.executable, "-m", "bench.tools.otlp_sink", "--count-file", str(self.sink_count)],
                stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, cwd=str(REPO))
            assert self.sink.stdout is not None
            ready = self.sink.stdout.readline().split()
            if ready[:1] != [b"SINK-READY"]:
                raise RuntimeError(f"OTLP sink did not start: {ready!r}")
            tracing_args = ["--otlp-endpoint", f"127.0.0.1:{int(ready[1])}"]
        for n in range(engines):
            grpc_port, http_port = common.free_port(), common.free_port()
            engine_log = open(workdir / f"engine{n}.log", "wb")  # noqa: SIM115
            self.logs.append(engine_log)
            engine = subprocess.Popen(
                [sys.executable, *(wrap["engine"] if n == 0 else []), *([] if profile and n == 0 else ["-m"]),
                 "durahub", "serve", "--grpc-port", str(grpc_port), "--http-port", str(http_port), "--db", self.db,
                 "--sqlite-synchronous", synchronous, "--log-level", "warning", *tracing_args],
                stdout=engine_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                # No metrics port (several engines, parallel runs): by variable, which engines from before
                # --metrics-port existed ignore (A/B runs against older source trees).
                env=dict(env, DURAHUB_METRICS_PORT="0"), cwd=str(REPO))
            self.engines.append(engine)
            # a profiled engine starts slowly (yappi traces every call of the imports)
            common.wait_http(f"http://127.0.0.1:{http_port}/v1.0/healthz", proc=engine, timeout=240 if profile else 60)
            worker_log = open(workdir / f"worker{n}.log", "wb")  # noqa: SIM115
            self.logs.append(worker_log)
            worker = subprocess.Popen(
                [sys.executable, *(wrap["worker"] if n == 0 else []), *([] if profile and n == 0 else ["-m"]),
                 "bench.apps.dapr_app", "--port", str(grpc_port)],
                stdout=subprocess.PIPE, stderr=worker_log, stdin=subprocess.DEVNULL, env=env, cwd=str(REPO))
            self.workers.append(worker)
            assert worker.stdout is not None
            line = worker.stdout.readline()
            if b"WORKER-READY" not in line:
                raise RuntimeError(f"worker did not start: {line!r}")
            self.clients.append(wf.DaprWorkflowClient(host="127.0.0.1", port=str(grpc_port)))
        self.engine, self.worker, self.client = self.engines[0], self.workers[0], self.clients[0]

    @property
    def pids(self) -> dict[str, int]:
        pids = {"engine": self.engine.pid, "worker": self.worker.pid, "client": os.getpid()}
        for n, (engine, worker) in enumerate(zip(self.engines[1:], self.workers[1:], strict=True), start=2):
            pids[f"engine{n}"], pids[f"worker{n}"] = engine.pid, worker.pid
        return pids

    def close(self) -> None:
        # the sink last: engines flush their pending spans to it as they stop
        for p in (*self.workers, *self.engines, *([self.sink] if self.sink else [])):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for log in self.logs:
            log.close()
        if self.pg_db:
            with contextlib.suppress(Exception):
                _psql(self.pg_admin, f"DROP DATABASE IF EXISTS {self.pg_db} WITH (FORCE)")

    def spans_received(self) -> int | None:
        """After close(): the spans the OTLP sink received (None when not tracing)."""
        if self.sink is None:
            return None
        return int(self.sink_count.read_text()) if self.sink_count.exists() else 0


def _metered(dep: Deployment, fn: Any) -> dict[str, Any]:
    meter = common.CpuMeter(dep.pids).start()
    out = fn()
    out.update(meter.stop())
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--synchronous", choices=["full", "normal"], default="full")
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--only", default="", help="comma-separated workload names (latency,order,fanout,chain,idle)")
    p.add_argument("--profile", default="", help="directory: also profile engine and worker under yappi")
    p.add_argument("--yappi-site", default="", help="site-packages directory that holds yappi")
    p.add_argument("--engines", type=int, default=1, help="engine processes sharing the database (PostgreSQL)")
    p.add_argument("--tracing", action="store_true", help="engines export spans over OTLP to a counting sink")
    p.add_argument("--size", action="append", default=[], metavar="KEY=JSON",
                   help="override one workload size, e.g. --size order_n=300 --size 'order_levels=[0]' (profiling)")
    args = p.parse_args(argv)
    sizes = dict(common.SMOKE_SIZES if args.smoke else common.FULL_SIZES)
    for item in args.size:
        key, _, value = item.partition("=")
        if key not in sizes:
            p.error(f"--size: unknown size {key!r} (known: {', '.join(sizes)})")
        sizes[key] = json.loads(value)
    backend = "postgres" if args.db == "postgres" else f"sqlite-{args.synchronous}"
    if args.engines > 1:
        backend += f" x{args.engines} engines"
    if args.tracing:
        backend += " traced"
    result: dict[str, Any] = {"system": "durahub", "backend": backend, "sizes": sizes}
    selected = {s for s in args.only.split(",") if s} or None
    timeout = 1200

    with tempfile.TemporaryDirectory(prefix="durahub-bench-") as tmp:
        dep = Deployment(args.db, args.synchronous, Path(tmp), args.pg, engines=args.engines, tracing=args.tracing)
        try:
            c = dep.client
            tag = uuid.uuid4().hex[:8]

            spread = itertools.count()

            def start(name: str, value: int) -> str:
                client = dep.clients[next(spread) % len(dep.clients)]
                return client.schedule_new_workflow(name, input=value,
                                                    instance_id=f"{name}-{tag}-{uuid.uuid4().hex[:12]}")

            def wait(iid: str) -> wf.WorkflowState:
                st = c.wait_for_workflow_completion(iid, timeout_in_seconds=timeout)
                if st is None or st.runtime_status != wf.WorkflowStatus.COMPLETED:
                    raise RuntimeError(f"{iid} ended {st.runtime_status if st else None}")
                return st

            def order_once(i: int) -> None:
                wait(start(ORDER, i))

            def turns(iid: str) -> dict[str, int]:
                """Orchestration turns the worker ran, and the history events it replayed over all of them."""
                events = c.get_workflow_history(iid)
                starts = [i for i, e in enumerate(events) if e.event_type.name == "WORKFLOW_STARTED"]
                return {"turns": len(starts), "events": len(events), "replayed_events": sum(starts)}

            def one(name: str, value: int) -> dict[str, Any]:
                t = time.perf_counter()
                iid = start(name, value)
                wait(iid)
                return {"wall_s": round(time.perf_counter() - t, 3), "_ids": [iid]}

            def with_turns(out: dict[str, Any]) -> dict[str, Any]:
                """After metering: how many turns the worker ran (history read back from the engine)."""
                ids = out.pop("_ids")
                if len(ids) == 1:
                    out.update(turns(ids[0]))
                else:
                    sample = [turns(iid)["turns"] for iid in ids[:: max(1, len(ids) // 50)]]
                    out["turns_per_wf"] = round(sum(sample) / len(sample), 2)
                return out

            def order_burst() -> dict[str, Any]:
                ids: list[str] = []

                def start_order(i: int) -> str:
                    iid = start(ORDER, i)
                    ids.append(iid)
                    return iid

                out = common.burst(sizes["order_n"], start_order, wait)
                out["_ids"] = ids
                return out

            def order_level(level: int) -> Any:
                if level:
                    return lambda: common.closed_loop(sizes["order_n"], level, order_once, sizes["loop_budget_s"])
                return order_burst

            def idle() -> dict[str, Any]:
                n = sizes["idle_n"]
                t = time.perf_counter()
                from concurrent.futures import ThreadPoolExecutor

                deadline = t + sizes["idle_start_budget_s"]

                def start_waiting(i: int) -> int:
                    if time.perf_counter() > deadline:
                        return 0
                    start(WAIT, i)
                    return 1

                with ThreadPoolExecutor(8) as pool:
                    n = sum(pool.map(start_waiting, range(n)))
                started = time.perf_counter() - t
                quiet = common.wait_quiet([dep.engine.pid, dep.worker.pid])
                out = {"n": n, "start_s": round(started, 2), "settle_s": round(quiet, 1)}
                out.update(common.idle_sample({"engine": dep.engine.pid, "worker": dep.worker.pid},
                                              sizes["idle_window"]))
                return out

            workloads: dict[str, Any] = {"latency": lambda: _metered(
                dep, lambda: common.closed_loop(sizes["latency_n"], 1, order_once, sizes["loop_budget_s"]))}
            for level in sizes["order_levels"]:
                workloads[f"order:{f'c{level}' if level else 'burst'}"] = (
                    (lambda f: lambda: with_turns(_metered(dep, f))) if not level else (lambda f: lambda: _metered(dep, f))
                )(order_level(level))
            for size in sizes["fanout"]:
                workloads[f"fanout:{size}"] = (lambda n: lambda: with_turns(_metered(dep, lambda: one(FANOUT, n))))(size)
            workloads[f"chain:{sizes['chain']}"] = lambda: with_turns(_metered(dep, lambda: one(CHAIN, sizes["chain"])))
            workloads["idle"] = idle
            common.run_workloads(result, workloads, selected)
        finally:
            dep.close()
        if args.tracing:
            result["spans_received"] = dep.spans_received()
        if args.profile:
            prof = Path(args.profile)
            prof.mkdir(parents=True, exist_ok=True)

            def profiled(label: str, name: str, value: int, n: int) -> Any:
                def run() -> dict[str, Any]:
                    work = Path(tmp) / f"profile-{label}"
                    work.mkdir()
                    pdep = Deployment(args.db, args.synchronous, work, args.pg,
                                      profile=(prof / f"{backend}-{label}", args.yappi_site))
                    try:
                        pc = pdep.client
                        for proc in (pdep.engine, pdep.worker):
                            os.kill(proc.pid, signal.SIGUSR1)  # profile the workload, not start-up
                        time.sleep(0.5)
                        t = time.perf_counter()
                        common.burst(n, lambda i: pc.schedule_new_workflow(name, input=value),
                                     lambda iid: pc.wait_for_workflow_completion(iid, timeout_in_seconds=timeout))
                        out: dict[str, Any] = {"n": n, "wall_s": round(time.perf_counter() - t, 3)}
                    finally:
                        pdep.close()
                    out["profile"] = {k: json.loads(f.read_text()) for k, f in pdep.profile_files.items()}
                    for k, v in out["profile"].items():
                        out[f"cpu_{k}_s"] = round(v["process_cpu_s"], 3)
                    return out
                return run

            common.run_workloads(result, {
                f"profile:order burst {sizes['order_n']}": profiled("order", ORDER, 0, sizes["order_n"]),
                f"profile:chain {sizes['chain']}": profiled("chain", CHAIN, sizes["chain"], 1),
            }, None)
    common.emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
