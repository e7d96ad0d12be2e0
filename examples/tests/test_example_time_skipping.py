"""The pattern scripts, unmodified, against `durahub serve --time-skipping`: an hourly monitor and a day-long
approval timeout finish as soon as the script waits for its workflow (both SDK generations; wall times are
printed with -s, not asserted)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from example_harness import STARTUP_TIMEOUT, run_script

from testsupport.plugin import track, untrack
from testsupport.server import DurahubServer


@pytest.fixture(scope="module")
def skipping_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DurahubServer]:
    base = tmp_path_factory.mktemp("time_skipping")
    server = DurahubServer(base / "durahub.db", base / "durahub.log", extra_args=["--time-skipping"])
    track(server)
    try:
        server.start(timeout=STARTUP_TIMEOUT)
        yield server
    finally:
        try:
            server.dispose()
        finally:
            untrack(server)


def result_of(script: str, server: DurahubServer, args: list[str]) -> str:
    started = time.monotonic()
    proc = run_script(script, server, args)
    print(f" {script}: {time.monotonic() - started:.2f}s wall (process start included)", end="")
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    [line] = [line for line in proc.stdout.splitlines() if line.startswith("Result: ")]
    return line[len("Result: "):]


def test_monitor_checks_hours_apart(skipping_server: DurahubServer) -> None:
    pattern = "healthy,unhealthy,unhealthy,healthy,healthy"
    result = json.loads(result_of("monitor.py", skipping_server, [
        "--pattern", pattern, "--healthy-interval", "3600", "--unhealthy-interval", "600"]))
    assert result == {"job_id": "job-1", "checks": 5, "alerts": 1, "history": pattern.split(","), "is_healthy": True}


def test_external_interaction_times_out_after_a_day(skipping_server: DurahubServer) -> None:
    assert result_of("external_interaction.py", skipping_server,
                     ["--cost", "2500", "--no-response", "--timeout", "86400"]) == "Cancelled: no approval in time"


def test_external_interaction_approved_in_time(skipping_server: DurahubServer) -> None:
    assert result_of("external_interaction.py", skipping_server,
                     ["--cost", "2500", "--approver", "Jo", "--timeout", "86400"]) == "Approved by 'Jo'"
