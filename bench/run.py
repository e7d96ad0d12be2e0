"""Benchmark entry point: durahub (official Dapr SDK worker) side by side with DBOS Transact and Temporal.

    python -m bench                 # full run: every system, every workload (tens of minutes on 2 cores)
    python -m bench --smoke         # tiny sizes, durahub (+ peers whose venvs are already installed), < 60 s
    python -m bench --systems durahub-sqlite-full,dbos-sqlite-wal --only order,latency

Each system runs in its own subprocess (and virtualenv, bench/venvs.py): durahub from the project venv (.venv19),
DBOS in .venv-bench-dbos, Temporal in .venv-bench-temporal, yappi (profiler) in .venv-bench-tools; missing peer
venvs are created on first full run. Stdlib only, so any python3 can start it.

This module is the CLI and the orchestration; the drivers are bench/systems/*, the workers they start
bench/apps/*, the table is rendered by bench/report.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import FULL_SIZES, REPO, RESULT_PREFIX, SMOKE_SIZES, log
from bench.report import derive, render, render_ceiling, render_profiles
from bench.venvs import VENVS, ensure_venv, python_of, venv_ready

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"

# (column, venv, driver module, driver args)
SYSTEMS: list[tuple[str, str, str, list[str]]] = [
    ("durahub-sqlite-full", "durahub", "bench.systems.durahub", ["--db", "sqlite", "--synchronous", "full"]),
    ("durahub-sqlite-normal", "durahub", "bench.systems.durahub", ["--db", "sqlite", "--synchronous", "normal"]),
    ("durahub-sqlite-traced", "durahub", "bench.systems.durahub",
     ["--db", "sqlite", "--synchronous", "full", "--tracing"]),
    ("durahub-postgres", "durahub", "bench.systems.durahub", ["--db", "postgres"]),
    ("durahub-postgres-x3", "durahub", "bench.systems.durahub", ["--db", "postgres", "--engines", "3"]),
    ("dbos-sqlite", "dbos", "bench.systems.dbos", ["--db", "sqlite"]),
    ("dbos-sqlite-wal", "dbos", "bench.systems.dbos", ["--db", "sqlite-wal"]),
    ("dbos-postgres", "dbos", "bench.systems.dbos", ["--db", "postgres"]),
    ("temporal", "temporal", "bench.systems.temporal", []),
]


def pg_available(dsn: str) -> str | None:
    """None when the PostgreSQL server answers, else why not."""
    try:
        r = subprocess.run(["psql", dsn, "-q", "-c", "select 1"], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.SubprocessError) as e:
        return f"psql: {e}"
    return None if r.returncode == 0 else r.stderr.strip()[:200]


def run_driver(py: Path, module: str, args: list[str], timeout: float, quiet: bool) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    try:
        proc = subprocess.run([str(py), "-m", module, *args], cwd=str(REPO), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE if quiet else None, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"errors": {"driver": f"timed out after {timeout:.0f}s"}}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    tail = (proc.stderr or "")[-400:] if quiet else ""
    return {"errors": {"driver": f"exit {proc.returncode}, no result line. {tail}"}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes; never installs anything; < 60 s")
    p.add_argument("--systems", default="", help="comma-separated columns: " + ",".join(s[0] for s in SYSTEMS))
    p.add_argument("--only", default="", help="comma-separated workloads: latency,order,fanout,chain,idle")
    p.add_argument("--no-ceiling", action="store_true", help="skip the in-process SDK ceiling measurement")
    p.add_argument("--profile", default=None,
                   help="directory for yappi CPU profiles of engine and worker (default bench/results/profile on full "
                        "runs; 'none' to skip)")
    p.add_argument("--pg", default=os.environ.get("DURAHUB_BENCH_PG", PG_DEFAULT), help="PostgreSQL admin DSN")
    p.add_argument("--json", default=None, help="write every raw result here (default bench/results/latest.json)")
    p.add_argument("--timeout", type=float, default=None, help="seconds per system (default 3600, smoke 50)")
    args = p.parse_args(argv)

    sizes = SMOKE_SIZES if args.smoke else FULL_SIZES
    timeout = args.timeout or (50.0 if args.smoke else 3600.0)
    wanted = {s for s in args.systems.split(",") if s}
    unknown = wanted - {s[0] for s in SYSTEMS}
    if unknown:
        p.error(f"unknown systems: {', '.join(sorted(unknown))}")
    t_start = time.time()
    started_load = os.getloadavg()
    runs: dict[str, dict[str, Any]] = {}
    columns: list[str] = []
    pg_problem = pg_available(args.pg)
    profile = None if args.smoke or args.profile == "none" else (args.profile or str(REPO / "bench/results/profile"))

    if profile:
        try:
            ensure_venv("tools")
        except Exception as e:  # noqa: BLE001
            log(f"py-spy unavailable, no profile: {e}")
            profile = None
    for column, venv, module, dargs in SYSTEMS:
        if wanted and column not in wanted:
            continue
        if args.smoke and not wanted and not (column.startswith("durahub-sqlite-full") or
                                              (venv != "durahub" and column.endswith("-wal") and venv_ready(venv))):
            # smoke: durahub on SQLite, plus DBOS WAL if its venv is already there
            continue
        columns.append(column)
        if "postgres" in column and pg_problem:
            runs[column] = {"errors": {"all": f"PostgreSQL not reachable at {args.pg}: {pg_problem}"}}
            continue
        try:
            if args.smoke:
                if not venv_ready(venv):
                    runs[column] = {"errors": {"all": f"{VENVS[venv][0]} not installed (smoke mode installs nothing)"}}
                    continue
            else:
                ensure_venv(venv)
        except Exception as e:  # noqa: BLE001 - reported in the table
            runs[column] = {"errors": {"all": f"could not install {VENVS[venv][1]}: {e}"}}
            continue
        extra = list(dargs)
        if args.smoke:
            extra.append("--smoke")
        if args.only:
            extra += ["--only", args.only]
        if "postgres" in column:
            extra += ["--pg", args.pg]
        if profile and column == "durahub-sqlite-full":
            site = subprocess.run([str(python_of("tools")), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                  capture_output=True, text=True, check=True).stdout.strip()
            extra += ["--profile", profile, "--yappi-site", site]
        log(f"== {column}")
        runs[column] = run_driver(python_of(venv), module, extra, timeout, quiet=args.smoke)
        derive(runs[column].get("results", {}))

    ceiling: dict[str, Any] = {}
    if not args.no_ceiling and (not wanted or any(c.startswith("durahub") for c in wanted)):
        log("== SDK ceiling")
        ceiling = run_driver(python_of("durahub"), "bench.tools.ceiling", ["--smoke"] if args.smoke else [], timeout,
                             quiet=args.smoke)

    machine = (f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}; "
               f"load average at start {started_load[0]:.2f} {started_load[1]:.2f} {started_load[2]:.2f}, "
               f"at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}; run took {time.time() - t_start:.0f} s")
    sizes_line = (f"sizes: order {sizes['order_n']} instances per level (levels {sizes['order_levels']}, 0 = burst), "
                  f"latency {sizes['latency_n']} sequential, fan-out {sizes['fanout']}, chain {sizes['chain']}, "
                  f"idle {sizes['idle_n']} waiting over {sizes['idle_window']} s")
    text = "\n\n".join(x for x in [
        f"durahub benchmark {'(SMOKE sizes: not a measurement)' if args.smoke else ''}".strip(),
        machine, sizes_line, render(columns, runs, sizes),
        render_ceiling(ceiling, runs) if ceiling else "", render_profiles(runs)] if x)
    print(text, flush=True)
    out_json = Path(args.json) if args.json else (None if args.smoke else REPO / "bench/results/latest.json")
    if out_json:
        out_json.parent.mkdir(parents=True, exist_ok=True)
        out_json.write_text(json.dumps({"machine": machine, "sizes": sizes, "runs": runs, "ceiling": ceiling},
                                       indent=1))
        (out_json.parent / "latest.txt").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
