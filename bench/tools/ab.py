"""A/B: the same benchmark for two durahub source trees in one script, interleaved (A B B A A B ...), so that a
change is judged against its parent under the same machine conditions. Prints each figure's median per tree
and the B/A ratio.

    python -m bench.tools.ab --a /tmp/parent/src --b src --rounds 2 \\
        --systems durahub-sqlite-full,durahub-postgres --only latency,order,chain
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import REPO
from bench.report import _get, derive, fmt, rows_for


def run_once(src: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench", "--systems", args.systems, "--only", args.only, "--no-ceiling",
           "--profile", "none", "--json", str(out)]
    env = dict(os.environ, DURAHUB_BENCH_SRC=str(Path(src).resolve()))
    subprocess.run(cmd, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--a", required=True, help="source tree A (the parent), e.g. a worktree's src")
    p.add_argument("--b", default=str(REPO / "src"), help="source tree B (default: this checkout's src)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--systems", default="durahub-sqlite-full,durahub-sqlite-normal,durahub-postgres")
    p.add_argument("--only", default="latency,order,chain")
    args = p.parse_args()
    runs: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
    sizes: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            # A B, then B A, ...: a machine that drifts slower or faster during the script favours neither.
            order = (("A", args.a), ("B", args.b)) if i % 2 == 0 else (("B", args.b), ("A", args.a))
            for label, src in order:
                print(f"round {i + 1}/{args.rounds}: {label} = {src}", file=sys.stderr, flush=True)
                data = run_once(src, args, Path(tmp) / f"{label}{i}.json")
                sizes = data["sizes"]
                runs[label].append(data["runs"])
    wanted = {w for w in args.only.split(",")}
    rows = [r for r in rows_for(sizes) if r[1].split(":")[0] in wanted]
    for system in args.systems.split(","):
        print(f"\n{system}: median of {args.rounds} runs each, interleaved")
        print(f"{'figure':<42}{'A':>10}{'B':>10}{'B/A':>8}")
        for label, workload, key, better, _ in rows:
            medians = []
            for side in ("A", "B"):
                values = []
                for run in runs[side]:
                    results = run.get(system, {}).get("results", {})
                    derive(results)
                    v = _get(results, workload, key)
                    if v is not None:
                        values.append(v)
                medians.append(statistics.median(values) if values else None)
            a, b = medians
            ratio = f"{b / a:.2f}x" if a and b is not None else "-"
            print(f"{label + ' [' + better + ']':<42}{fmt(a):>10}{fmt(b):>10}{ratio:>8}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
