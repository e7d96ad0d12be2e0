"""DBOS Transact driver: the same workloads as async DBOS workflows, in one process (DBOS is a library:
the engine is the application process).

    python -m bench.systems.dbos --db sqlite|sqlite-wal|postgres [--smoke]

Runs in .venv-bench-dbos; prints one BENCH-RESULT line. Parallel steps use asyncio.gather, DBOS's way to
run steps of one workflow concurrently.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any

from dbos import DBOS

from bench import common


@DBOS.step()
async def noop(value: int) -> int:
    return value


@DBOS.workflow()
async def bench_order(value: int) -> int:
    a, b = await asyncio.gather(noop(1), noop(2))
    c = await noop(3)
    return a + b + c


@DBOS.workflow()
async def bench_fanout(n: int) -> int:
    results = await asyncio.gather(*[noop(i) for i in range(n)])
    return len(results)


@DBOS.workflow()
async def bench_chain(n: int) -> int:
    total = 0
    for i in range(n):
        total += await noop(i)
    return total


@DBOS.workflow()
async def bench_wait(value: int) -> Any:
    return await DBOS.recv_async("go", timeout_seconds=24 * 3600)


def _psql(dsn: str, sql: str) -> None:
    subprocess.run(["psql", dsn, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True, capture_output=True,
                   timeout=60)


async def closed_loop(n: int, concurrency: int, wf: Any, budget_s: float) -> dict[str, Any]:
    counter = iter(range(n))
    lat: list[float] = []
    deadline = time.perf_counter() + budget_s

    async def loop() -> None:
        for i in counter:
            if time.perf_counter() > deadline:
                return
            t = time.perf_counter()
            h = await DBOS.start_workflow_async(wf, i)
            await h.get_result()
            lat.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*[loop() for _ in range(min(concurrency, n))])
    wall = time.perf_counter() - t0
    n = len(lat)
    return {"n": n, "wall_s": round(wall, 3), "wf_per_s": round(n / wall, 1), **common.latency_stats(lat)}


async def burst(n: int, wf: Any) -> dict[str, Any]:
    t0 = time.perf_counter()
    handles = [await DBOS.start_workflow_async(wf, i) for i in range(n)]
    started = time.perf_counter() - t0
    await asyncio.gather(*[h.get_result() for h in handles])
    wall = time.perf_counter() - t0
    return {"n": n, "wall_s": round(wall, 3), "wf_per_s": round(n / wall, 1), "start_s": round(started, 3)}


async def one(wf: Any, value: int) -> dict[str, Any]:
    t = time.perf_counter()
    h = await DBOS.start_workflow_async(wf, value)
    await h.get_result()
    return {"wall_s": round(time.perf_counter() - t, 3)}


async def run(args: argparse.Namespace, result: dict[str, Any], tmp: Path) -> None:
    sizes = common.SMOKE_SIZES if args.smoke else common.FULL_SIZES
    result["sizes"] = sizes
    pg_db = None
    if args.db == "postgres":
        pg_db = f"dbos_bench_{uuid.uuid4().hex[:10]}"
        _psql(args.pg, f"CREATE DATABASE {pg_db}")
        url = args.pg.rsplit("/", 1)[0] + "/" + pg_db
    else:
        path = tmp / "dbos.sqlite"
        if args.db == "sqlite-wal":
            # WAL is a property of the database file: set it once before DBOS opens it.
            con = sqlite3.connect(path)
            con.execute("PRAGMA journal_mode=WAL")
            con.close()
        url = f"sqlite:///{path}"
    DBOS(config={"name": "durahub-bench", "system_database_url": url, "log_level": "WARNING"})
    DBOS.launch()
    me = os.getpid()
    try:
        # Collected first, then run one at a time in this event loop.
        async def metered(coro: Any) -> dict[str, Any]:
            meter = common.CpuMeter({"engine": me}).start()
            out = await coro
            out.update(meter.stop())
            return out

        async def idle() -> dict[str, Any]:
            n = sizes["idle_n"]
            t = time.perf_counter()
            deadline = t + sizes["idle_start_budget_s"]
            for i in range(n):
                if time.perf_counter() > deadline:
                    n = i
                    break
                await DBOS.start_workflow_async(bench_wait, i)
            started = time.perf_counter() - t
            quiet = await asyncio.to_thread(common.wait_quiet, [me])
            out = {"n": n, "start_s": round(started, 2), "settle_s": round(quiet, 1)}
            out.update(await asyncio.to_thread(common.idle_sample, {"engine": me}, sizes["idle_window"]))
            return out

        jobs: dict[str, Any] = {"latency": lambda: metered(closed_loop(sizes["latency_n"], 1, bench_order, sizes["loop_budget_s"]))}
        for level in sizes["order_levels"]:
            jobs[f"order:{f'c{level}' if level else 'burst'}"] = (lambda lv: lambda: metered(
                closed_loop(sizes["order_n"], lv, bench_order, sizes["loop_budget_s"]) if lv else burst(sizes["order_n"], bench_order)))(level)
        for size in sizes["fanout"]:
            jobs[f"fanout:{size}"] = (lambda n: lambda: metered(one(bench_fanout, n)))(size)
        jobs[f"chain:{sizes['chain']}"] = lambda: metered(one(bench_chain, sizes["chain"]))
        jobs["idle"] = idle
        selected = {s for s in args.only.split(",") if s} or None
        res, errs = result.setdefault("results", {}), result.setdefault("errors", {})
        for name, job in jobs.items():
            if selected and name.split(":")[0] not in selected:
                continue
            common.log(f"dbos/{result['backend']}: {name}")
            try:
                res[name] = await asyncio.wait_for(job(), timeout=args.timeout)
                common.log(f"  -> {res[name]}")
            except Exception as e:  # noqa: BLE001 - reported in the table
                errs[name] = f"{type(e).__name__}: {e}"[:300]
                common.log(f"  !! {errs[name]}")
    finally:
        # Report before anything shuts down: cancelling 10,000 waiting workflows only adds noise.
        common.emit(result)
        if pg_db:
            with contextlib.suppress(Exception):
                _psql(args.pg, f"DROP DATABASE IF EXISTS {pg_db} WITH (FORCE)")
        sys.stdout.flush()
        os._exit(0)  # DBOS leaves background threads and waiting workflows behind: do not wait for them


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--db", choices=["sqlite", "sqlite-wal", "postgres"], default="sqlite")
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--only", default="")
    p.add_argument("--timeout", type=float, default=300.0, help="per workload")
    args = p.parse_args(argv)
    result: dict[str, Any] = {"system": f"dbos {version('dbos')}", "backend": args.db}
    with tempfile.TemporaryDirectory(prefix="dbos-bench-") as tmp:
        try:
            asyncio.run(run(args, result, Path(tmp)))
        except BaseException as e:  # noqa: BLE001
            result.setdefault("errors", {})["driver"] = f"{type(e).__name__}: {e}"[:300]
            common.emit(result)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # DBOS leaves background threads and waiting workflows behind: do not wait for them


if __name__ == "__main__":
    sys.exit(main())
