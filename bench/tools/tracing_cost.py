"""What does tracing cost? The order workloads on durahub SQLite with tracing off (`durahub-sqlite-full`) and
on (`durahub-sqlite-traced`: `--otlp-endpoint` to a local counting OTLP sink), interleaved (off on, on off,
...) so machine drift favours neither; prints each figure's median and the on/off ratio. Issue 16's bar:
tracing on costs under 10% of order throughput.

    python -m bench.tools.tracing_cost --rounds 4 [--src other/src]

Each round is one `python -m bench` run per column (bench.tools.ab's loop, runner and table).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.tools.ab import interleaved, print_table, run_once

OFF, ON = "durahub-sqlite-full", "durahub-sqlite-traced"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--only", default="order", help="workloads (default: order, i.e. order c16 and order burst)")
    p.add_argument("--src", default=None, help="durahub source tree the engines run (default: this checkout's)")
    args = p.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {OFF: [], ON: []}
    spans: list[int] = []
    sizes: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, system in interleaved(args.rounds, (OFF, ON)):
            print(f"round {i + 1}/{args.rounds}: {system}", file=sys.stderr, flush=True)
            data = run_once(system, args.only, Path(tmp) / f"{system}{i}.json", args.src)
            sizes = data["sizes"]
            run = data["runs"][system]
            if run.get("errors"):
                raise SystemExit(f"{system} failed: {run['errors']}")
            if system == ON:
                spans.append(int(run.get("spans_received") or 0))
            runs[system].append(run.get("results", {}))
    print(f"tracing off ({OFF}) vs on ({ON}): median of {args.rounds} runs each, interleaved; "
          f"spans the sink received per traced run: {spans}")
    print_table(sizes, args.only, {"off": runs[OFF], "on": runs[ON]}, show_runs=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
