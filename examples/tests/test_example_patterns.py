"""Workflow pattern scripts (seed 003), each run as a subprocess against a real durahub:
exit code 0 and the printed result."""

from __future__ import annotations

import json
import re
import subprocess

from example_harness import run_script

from testsupport.server import DurahubServer


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-3000:]}"
    return proc.stdout


def result_line(out: str) -> str:
    lines = [line for line in out.splitlines() if line.startswith("Result: ")]
    assert len(lines) == 1, out
    return lines[0][len("Result: "):]


def test_task_chaining(pattern_server: DurahubServer) -> None:
    out = ok(run_script("task_chaining.py", pattern_server, ["--input", "3"]))
    assert json.loads(result_line(out)) == [4, 8, 64]
    assert [line for line in out.splitlines() if line.startswith("Step ")] == [
        "Step 1: received 3", "Step 2: received 4", "Step 3: received 8",
    ]
    assert "COMPLETED" in out and "Compensating" not in out


def test_task_chaining_compensates_on_error(pattern_server: DurahubServer) -> None:
    out = ok(run_script("task_chaining.py", pattern_server, ["--fail-at", "3"]))
    assert re.search(r"Compensating after error .*step 3 failed on purpose.*undoing steps \[2, 1\]", out), out
    assert "Step 3: received 4" in out
    assert re.search(r"Workflow chain-\w+: FAILED", out)
    assert "Result:" not in out


def test_fan_out_fan_in_runs_items_in_parallel(pattern_server: DurahubServer) -> None:
    out = ok(run_script("fan_out_fan_in.py", pattern_server, ["--items", "6", "--item-seconds", "0.6"]))
    assert json.loads(result_line(out)) == {"items": 6, "outputs": [2, 4, 6, 8, 10, 12], "total": 42}
    assert "Final result: 42" in out
    assert sorted(re.findall(r"Processing work item (\d+)", out), key=int) == [str(i) for i in range(1, 7)]
    elapsed = float(re.search(r"COMPLETED in ([\d.]+)s", out).group(1))
    assert elapsed < 6 * 0.6 / 2, f"6 items of 0.6 s took {elapsed}s: not parallel"


def test_monitor_continues_as_new_and_stops(pattern_server: DurahubServer) -> None:
    out = ok(run_script(
        "monitor.py", pattern_server,
        ["--pattern", "healthy,unhealthy,unhealthy,healthy,unhealthy,healthy",
         "--healthy-interval", "0.2", "--unhealthy-interval", "0.1"],
    ))
    result = json.loads(result_line(out))
    assert result == {
        "job_id": "job-1",
        "checks": 6,
        "alerts": 2,
        "history": ["healthy", "unhealthy", "unhealthy", "healthy", "unhealthy", "healthy"],
        "is_healthy": True,
    }
    assert out.count("*** Alert: Job 'job-1' is unhealthy!") == 2
    # Each round ran as a fresh generation: every check printed exactly once.
    assert [int(n) for n in re.findall(r"check (\d+):", out)] == [1, 2, 3, 4, 5, 6]


def test_external_interaction_approve(pattern_server: DurahubServer) -> None:
    out = ok(run_script("external_interaction.py", pattern_server, ["--cost", "2500", "--approver", "Jane Doe"]))
    assert result_line(out) == "Approved by 'Jane Doe'"
    assert "*** Placing order: MyProduct (1)" in out


def test_external_interaction_reject(pattern_server: DurahubServer) -> None:
    out = ok(run_script("external_interaction.py", pattern_server, ["--cost", "1000", "--reject", "--approver", "Bo"]))
    assert result_line(out) == "Rejected by 'Bo'"
    assert "Placing order" not in out


def test_external_interaction_timeout(pattern_server: DurahubServer) -> None:
    out = ok(run_script("external_interaction.py", pattern_server, ["--no-response", "--timeout", "1"]))
    assert result_line(out) == "Cancelled: no approval in time"


def test_external_interaction_auto_approved(pattern_server: DurahubServer) -> None:
    out = ok(run_script("external_interaction.py", pattern_server, ["--cost", "999.99"]))
    assert result_line(out) == "Auto-approved"
    assert "Sending approval request" not in out
