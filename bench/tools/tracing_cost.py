"""What does tracing cost? The order workloads on durahub SQLite with tracing off (`durahub-sqlite-full`) and
on (`durahub-sqlite-traced`: `--otlp-endpoint` to a local counting OTLP sink), interleaved (off on, on off,
...) so machine drift favours neither; prints each figure's median and the on/off ratio. Issue 16's bar:
tracing on costs under 10% of order throughput.

    python -m bench.tools.tracing_cost --rounds 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import REPO
from bench.report import _get, derive, fmt, rows_for

OFF, ON = "durahub-sqlite-full", "durahub-sqlite-traced"


def run_once(system: str, only: str, out: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench", "--systems", system, "--only", only, "--no-ceiling", "--profile", "none",
           "--json", str(out)]
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--only", default="order", help="workloads (default: order, i.e. order c16 and order burst)")
    args = p.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {OFF: [], ON: []}
    spans: list[int] = []
    sizes: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            for system in (OFF, ON) if i % 2 == 0 else (ON, OFF):
                print(f"round {i + 1}/{args.rounds}: {system}", file=sys.stderr, flush=True)
                data = run_once(system, args.only, Path(tmp) / f"{system}{i}.json")
                sizes = data["sizes"]
                run = data["runs"][system]
                if run.get("errors"):
                    raise SystemExit(f"{system} failed: {run['errors']}")
                if system == ON:
                    spans.append(int(run.get("spans_received") or 0))
                runs[system].append(run.get("results", {}))
    wanted = set(args.only.split(","))
    print(f"tracing off ({OFF}) vs on ({ON}): median of {args.rounds} runs each, interleaved; "
          f"spans the sink received per traced run: {spans}")
    print(f"{'figure':<42}{'off':>10}{'on':>10}{'on/off':>8}")
    for label, workload, key, better, _ in rows_for(sizes):
        if workload.split(":")[0] not in wanted:
            continue
        medians = []
        for system in (OFF, ON):
            values = []
            for results in runs[system]:
                derive(results)
                v = _get(results, workload, key)
                if v is not None:
                    values.append(v)
            medians.append(statistics.median(values) if values else None)
        off, on = medians
        ratio = f"{on / off:.2f}x" if off and on is not None else "-"
        print(f"{label + ' [' + better + ']':<42}{fmt(off):>10}{fmt(on):>10}{ratio:>8}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
