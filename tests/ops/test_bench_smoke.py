"""The benchmark's smoke mode runs end to end and prints its table (no timing assertions)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from testsupport.process import REPO_ROOT as REPO

EXPECTED_ROWS = [
    "latency c1 p50 ms",
    "latency c1 p99 ms",
    "order c4 wf/s",
    "order burst 20 wf/s",
    "order burst 20 activities/s",
    "engine CPU ms/wf",
    "worker CPU ms/wf",
    "fan-out 20 s",
    "chain 10 s",
    "idle: waiting workflows started (of 20)",
    "engine RSS MB with them waiting",
    "engine CPU % while idle",
    "SDK WORKER CEILING",
]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_bench_smoke_prints_table() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("DURAHUB_SERVER_PYTHON", None)
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--systems", "durahub-sqlite-full"],
        cwd=str(REPO), env=env, capture_output=True, text=True, timeout=120,
    )
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "VALUES" in out, out
    assert "dh-sq-full" in out, out
    for row in EXPECTED_ROWS:
        assert row in out, f"missing row {row!r} in:\n{out}\n{proc.stderr[-2000:]}"
    assert "NOT MEASURED" not in out, out
    # every durahub figure was measured: no '-' cells in the values table
    table = out.split("VALUES", 1)[1].split("\n\n", 1)[0]
    for line in table.splitlines()[3:]:
        assert not line.rstrip().endswith(" -"), line
