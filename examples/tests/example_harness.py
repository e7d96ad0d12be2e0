"""Harness for the example-app tests: a real durahub server subprocess, example apps under
uvicorn as subprocesses pointed at it through DAPR_GRPC_PORT / DAPR_HTTP_PORT, and pattern
scripts run to completion.

Nothing here imports durahub or the apps: the tests also run in a virtualenv with the legacy
SDK where durahub is not importable; the server then runs under DURAHUB_SERVER_PYTHON.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_PYTHON = os.environ.get("DURAHUB_SERVER_PYTHON", sys.executable)
APP_PYTHON = sys.executable  # apps run with the SDK under test
STARTUP_TIMEOUT = float(os.environ.get("EXAMPLES_STARTUP_TIMEOUT", "40"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(
    predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05, message: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message} not reached after {timeout:.1f}s; last value: {last!r}")
        time.sleep(interval)


class _Process:
    """A subprocess writing to its own log file."""

    name = "process"

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def _spawn(self, cmd: Sequence[str], env: Mapping[str, str]) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"===== {' '.join(cmd)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                list(cmd),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env),
                cwd=str(REPO_ROOT),
                start_new_session=True,
            )

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

    def check_alive(self) -> None:
        assert self.proc is not None
        rc = self.proc.poll()
        if rc is not None:
            tail = "\n".join(self.log_text().splitlines()[-60:])
            raise RuntimeError(f"{self.name} exited with code {rc}; log tail:\n{tail}")

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


class DurahubServer(_Process):
    name = "durahub server"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir / "durahub.log")
        self.db_path = workdir / "durahub.db"
        self.grpc_port = free_port()
        self.http_port = free_port()

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> DurahubServer:
        env = dict(os.environ)
        src = str(REPO_ROOT / "src")
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["PYTHONUNBUFFERED"] = "1"
        self._spawn(
            [
                SERVER_PYTHON, "-m", "durahub", "serve",
                "--grpc-port", str(self.grpc_port),
                "--http-port", str(self.http_port),
                "--db", str(self.db_path),
            ],
            env,
        )

        def ready() -> bool:
            self.check_alive()
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{self.http_url}/v1.0/healthz", timeout=1.0).status_code == 204
            return False

        wait_until(ready, timeout=STARTUP_TIMEOUT, message="durahub /v1.0/healthz 204")
        return self

    def sdk_env(self) -> dict[str, str]:
        """What `durahub run` (or `dapr run`) exports to the app."""
        return {
            "DAPR_GRPC_PORT": str(self.grpc_port),
            "DAPR_HTTP_PORT": str(self.http_port),
            "DAPR_RUNTIME_HOST": "127.0.0.1",
            # A hung engine call fails the test instead of hanging it.
            "DAPR_API_TIMEOUT_SECONDS": "30",
        }


class ExampleApp(_Process):
    """`python -m uvicorn examples.<name>.app:app` against one durahub server."""

    def __init__(self, module: str, server: DurahubServer, workdir: Path, env: Mapping[str, str]) -> None:
        super().__init__(workdir / f"{module.rsplit('.', 1)[0].replace('.', '_')}-{id(self)}.log")
        self.name = f"app {module}"
        self.module = module
        self.server = server
        self.port = free_port()
        self.extra_env = dict(env)
        self.client: httpx.Client | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ExampleApp:
        env = dict(os.environ)
        env.update(self.server.sdk_env())
        env.update(self.extra_env)
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("PYTHONPATH", None)  # the app must work from the repository root on its own
        self._spawn(
            [
                APP_PYTHON, "-m", "uvicorn", self.module,
                "--host", "127.0.0.1", "--port", str(self.port),
                "--app-dir", str(REPO_ROOT), "--log-level", "warning",
            ],
            env,
        )
        self.client = httpx.Client(base_url=self.url, timeout=30.0)

        def healthy() -> bool:
            self.check_alive()
            with contextlib.suppress(httpx.HTTPError):
                return self.client.get("/health").status_code == 200
            return False

        wait_until(healthy, timeout=STARTUP_TIMEOUT, message=f"{self.module} GET /health 200")
        return self

    def stop(self, timeout: float = 15.0) -> None:
        if self.client is not None:
            self.client.close()
        super().stop(timeout)

    # -- http shortcuts ----------------------------------------------------------------
    def get(self, path: str, **kw: Any) -> httpx.Response:
        assert self.client is not None
        return self.client.get(path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        assert self.client is not None
        return self.client.post(path, **kw)

    def wait_status(
        self, path: str, statuses: set[str] | str, timeout: float = 20.0, key: str = "runtime_status"
    ) -> dict[str, Any]:
        """Poll GET ``path`` until its JSON ``key`` is in ``statuses``; return the body."""
        wanted = {statuses} if isinstance(statuses, str) else statuses
        seen: list[Any] = []

        def check() -> dict[str, Any] | None:
            r = self.get(path)
            assert r.status_code == 200, f"GET {path}: {r.status_code} {r.text}"
            body = r.json()
            seen.append(body.get(key))
            return body if body.get(key) in wanted else None

        return wait_until(check, timeout=timeout, message=f"{path} {key} in {sorted(wanted)} (seen {seen[-3:]})")


def run_script(
    script: str, server: DurahubServer, args: Sequence[str] = (), env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``examples/patterns/<script>`` to completion against ``server``."""
    full_env = dict(os.environ)
    full_env.update(server.sdk_env())
    full_env.update(env or {})
    full_env["PYTHONUNBUFFERED"] = "1"
    full_env.pop("PYTHONPATH", None)
    return subprocess.run(
        [APP_PYTHON, str(REPO_ROOT / "examples" / "patterns" / script), *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=str(REPO_ROOT),
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
