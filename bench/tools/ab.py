"""A/B: the same benchmark for two durahub source trees in one script, interleaved (A B B A A B ...), so that a
change is judged against its parent under the same machine conditions. Prints each figure's median per tree
and the B/A ratio.

    python -m bench.tools.ab --a /tmp/parent/src --b src --rounds 2 \\
        --systems durahub-sqlite-full,durahub-postgres --only latency,order,chain

The interleaving, one bench run and the medians table are also what bench.tools.tracing_cost uses.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.common import REPO
from bench.report import _get, derive, fmt, rows_for


def run_once(systems: str, only: str, out: Path, src: str | None = None) -> dict[str, Any]:
    """One `python -m bench` run of `systems` (engines from source tree `src`, default this checkout's)."""
    cmd = [sys.executable, "-m", "bench", "--systems", systems, "--only", only, "--no-ceiling",
           "--profile", "none", "--json", str(out)]
    env = dict(os.environ)
    if src is not None:
        env["DURAHUB_BENCH_SRC"] = str(Path(src).resolve())
    subprocess.run(cmd, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def interleaved(rounds: int, sides: Sequence[str]) -> Iterator[tuple[int, str]]:
    """(round, side) in the order A B, B A, A B, ...: a machine that drifts slower or faster during the script
    favours neither side."""
    for i in range(rounds):
        for side in sides if i % 2 == 0 else tuple(reversed(sides)):
            yield i, side


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def ratio(a: float | None, b: float | None) -> str:
    return f"{b / a:.2f}x" if a and b is not None else "-"


def figure(results: Sequence[dict[str, Any]], workload: str, key: str) -> list[float]:
    """One figure from each run's results (derived figures included), in run order."""
    values = []
    for r in results:
        derive(r)
        v = _get(r, workload, key)
        if v is not None:
            values.append(v)
    return values


def print_table(sizes: dict[str, Any], only: str, columns: dict[str, list[dict[str, Any]]],
                show_runs: bool = False, out: Callable[[str], None] = print) -> None:
    """Each figure's median per column (a list of runs' results) and the last column over the first;
    `show_runs` adds every run's value (to see the spread behind a median)."""
    wanted = set(only.split(","))
    names = list(columns)
    first, last = names[0], names[-1]
    out(f"{'figure':<42}" + "".join(f"{n:>10}" for n in names) + f"{last + '/' + first:>10}"
        + ("   runs: " + ", ".join(names) if show_runs else ""))
    for label, workload, key, better, _ in rows_for(sizes):
        if workload.split(":")[0] not in wanted:
            continue
        values = {n: figure(runs, workload, key) for n, runs in columns.items()}
        medians = {n: median(v) for n, v in values.items()}
        line = f"{label + ' [' + better + ']':<42}" + "".join(f"{fmt(m):>10}" for m in medians.values()) \
            + f"{ratio(medians[first], medians[last]):>10}"
        if show_runs:
            line += "   " + " | ".join(" ".join(fmt(v) for v in values[n]) for n in names)
        out(line)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--a", required=True, help="source tree A (the parent), e.g. a worktree's src")
    p.add_argument("--b", default=str(REPO / "src"), help="source tree B (default: this checkout's src)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--systems", default="durahub-sqlite-full,durahub-sqlite-normal,durahub-postgres")
    p.add_argument("--only", default="latency,order,chain")
    p.add_argument("--runs", action="store_true", help="also print every run's value")
    args = p.parse_args()
    trees = {"A": args.a, "B": args.b}
    runs: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
    sizes: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, side in interleaved(args.rounds, ("A", "B")):
            print(f"round {i + 1}/{args.rounds}: {side} = {trees[side]}", file=sys.stderr, flush=True)
            data = run_once(args.systems, args.only, Path(tmp) / f"{side}{i}.json", trees[side])
            sizes = data["sizes"]
            runs[side].append(data["runs"])
    for system in args.systems.split(","):
        print(f"\n{system}: median of {args.rounds} runs each, interleaved")
        print_table(sizes, args.only, {side: [r.get(system, {}).get("results", {}) for r in side_runs]
                                       for side, side_runs in runs.items()}, args.runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
