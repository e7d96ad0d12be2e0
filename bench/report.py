"""The benchmark's printed report: the values table with targets, the durahub/peer ratios, the SDK ceiling and
the profiles. Stdlib only.
"""

from __future__ import annotations

import json
from typing import Any

# durahub column / peer column, for the ratio table.
PAIRS = [
    ("durahub-sqlite-full", "dbos-sqlite"),
    ("durahub-sqlite-full", "dbos-sqlite-wal"),
    ("durahub-sqlite-normal", "dbos-sqlite-wal"),
    ("durahub-postgres", "dbos-postgres"),
    ("durahub-postgres-x3", "dbos-postgres"),
    ("durahub-sqlite-full", "temporal"),
    ("durahub-sqlite-traced", "durahub-sqlite-full"),  # the cost of tracing on (issue 16: under 10%)
]

SHORT = {
    "durahub-sqlite-full": "dh-sq-full", "durahub-sqlite-normal": "dh-sq-norm", "durahub-postgres": "dh-pg",
    "durahub-postgres-x3": "dh-pg-x3", "durahub-sqlite-traced": "dh-sq-traced",
    "dbos-sqlite": "dbos-sq", "dbos-sqlite-wal": "dbos-wal", "dbos-postgres": "dbos-pg", "temporal": "temporal",
}


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
