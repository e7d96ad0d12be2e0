"""Subprocesses with their own log file, free ports, and polling."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def skip_unless_default_ports_are_ours(*ports: int) -> None:
    """Tests that run the README's commands as written need daprd's default ports. scripts/test.sh runs its
    passes in two parallel lanes and gives those ports to the first lane only (DURAHUB_TEST_DEFAULT_PORTS=0 in
    the other); anything else already listening on them (a user's engine) skips the test too."""
    import pytest  # only tests call this; the harness's other users need no pytest

    if os.environ.get("DURAHUB_TEST_DEFAULT_PORTS") == "0":
        pytest.skip("the default ports belong to the other test lane (scripts/test.sh)")
    busy = []
    for port in ports:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                busy.append(port)
    if busy:
        pytest.skip(f"ports {busy} are in use on this machine")


def wait_until(
    predicate: Callable[[], Any],
    timeout: float = 20.0,
    interval: float = 0.05,
    message: str | Callable[[], str] = "condition not reached",
) -> Any:
    """Poll ``predicate`` until it returns something truthy; return that value.

    Raises AssertionError (with ``message``) when the deadline passes.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"{text} (after {timeout:.1f}s; last value: {last!r})")
        time.sleep(interval)


class ManagedProcess:
    """A subprocess (started from the repository root) writing to its own log file, which it appends to on
    every start so that one object can be killed and started again."""

    name = "process"

    def __init__(self, log_path: Path) -> None:
        self.log_path = Path(log_path)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def _spawn(self, cmd: Sequence[str], env: Mapping[str, str], *, new_session: bool = False) -> None:
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} already running"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== test harness: start #{self.starts}: {' '.join(cmd)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                list(cmd),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env),
                cwd=str(REPO_ROOT),
                start_new_session=new_session,
            )

    # -- lifecycle -------------------------------------------------------------------
    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        """Raise (with the log tail) if the process has exited."""
        assert self.proc is not None, f"{self.name} was never started"
        rc = self.proc.poll()
        if rc is not None:
            raise RuntimeError(f"{self.name} exited with code {rc}; log tail:\n{self.log_tail()}")

    def kill(self) -> None:
        """kill -9: no shutdown hooks, no flushing."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._note("killed with SIGKILL")

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (SIGTERM), escalating to SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
            self._note(f"stopped (rc={self.proc.returncode})")
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self._note(f"did not stop within {timeout}s of SIGTERM; killed")

    # -- logs ------------------------------------------------------------------------
    def _note(self, text: str) -> None:
        with contextlib.suppress(OSError), open(self.log_path, "ab") as log:
            log.write(f"===== test harness: {text}\n".encode())

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_text(self, start: int = 0) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(start)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 80, start: int = 0) -> str:
        return "\n".join(self.log_text(start).splitlines()[-lines:])
