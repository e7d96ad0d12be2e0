"""Load: many workflows waiting at once on timers and events, a burst of raised events, many concurrent
starts. Reports the server's peak RSS (VmHWM) and open fds; nothing may be dropped.

CI size by default; DURAHUB_FAULTS_LONG=1 for 10,000 / 10,000 / 1,000.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from testsupport import faultlib
from testsupport.faultlib import run_load, scale
from testsupport.server import DurahubServer

pytestmark = [pytest.mark.timeout(1800)]


def test_load_waiting_burst_and_concurrent_starts(server_factory: Callable[..., DurahubServer], tmp_path: Path) -> None:
    srv = server_factory()
    figures = run_load(srv, tmp_path, waiting=scale(2000, 10_000), events=scale(2000, 10_000),
                       starts=1000)
    print("\n" + faultlib.format_table(list(figures.items())))
    max_fds = int(str(figures["max open fds (baseline)"]).split()[0])
    # Bounded: memory and file handles do not grow with the number of waiting workflows.
    assert max_fds < 400, figures
    assert float(str(figures["peak RSS (MiB)"])) < 1024, figures
