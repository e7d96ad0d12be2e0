"""A durahub server as a subprocess: `python -m durahub serve` on free ports with its own log file.

Nothing here imports durahub: the suite also runs in a virtualenv that has only the legacy
(1.18) SDK, where the server is launched with another interpreter (DURAHUB_SERVER_PYTHON).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

from testsupport.databases import BACKEND, create_pg_database, drop_pg_database
from testsupport.process import REPO_ROOT, ManagedProcess, free_port

SERVER_PYTHON = os.environ.get("DURAHUB_SERVER_PYTHON", sys.executable)
# Source tree put first on the server's PYTHONPATH (override to run the suite against a copy).
SERVER_SRC = os.environ.get("DURAHUB_SERVER_SRC", str(REPO_ROOT / "src"))
SERVER_READY_TIMEOUT = float(os.environ.get("DURAHUB_TEST_SERVER_READY_TIMEOUT", "30"))


def server_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with durahub's source tree first on PYTHONPATH, which
    works whether or not durahub is pip-installed into the server interpreter."""
    env = dict(os.environ if base is None else base)
    # Every test server would otherwise try daprd's default metrics port, 9090 (tests that want it pass it).
    env.setdefault("DURAHUB_METRICS_PORT", "0")
    env["PYTHONPATH"] = SERVER_SRC + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


class DurahubServer(ManagedProcess):
    """One `python -m durahub serve` subprocess with its own log file.

    The db path and ports are fixed at construction so that the same server can be killed
    and started again on the same database file and ports. With the PostgreSQL backend
    (``backend``, default DURAHUB_TEST_BACKEND) the server gets a fresh database that lives until
    ``dispose()``.
    """

    def __init__(
        self,
        db_path: Path,
        log_path: Path,
        grpc_port: int | None = None,
        http_port: int | None = None,
        log_level: str = "info",
        extra_args: Iterable[str] = (),
        backend: str | None = None,
    ) -> None:
        super().__init__(log_path)
        self.db_path = Path(db_path)
        self.backend = backend or BACKEND
        # The --db value: the SQLite file, or a fresh PostgreSQL database that lives as long as this object.
        self.db = create_pg_database() if self.backend == "postgres" else str(self.db_path)
        self.grpc_port = grpc_port or free_port()
        self.http_port = http_port or free_port()
        self.name = f"durahub server (grpc {self.grpc_port})"
        self.log_level = log_level
        self.extra_args = list(extra_args)

    # -- addresses -------------------------------------------------------------------
    @property
    def port(self) -> str:
        """The gRPC port as the SDK wants it (a string)."""
        return str(self.grpc_port)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def sdk_env(self) -> dict[str, str]:
        """What `durahub run` (or `dapr run`) exports to an app."""
        return {
            "DAPR_GRPC_PORT": str(self.grpc_port),
            "DAPR_HTTP_PORT": str(self.http_port),
            "DAPR_RUNTIME_HOST": "127.0.0.1",
            # A hung engine call fails the test instead of hanging it.
            "DAPR_API_TIMEOUT_SECONDS": "30",
        }

    def command(self) -> list[str]:
        return [
            SERVER_PYTHON,
            "-m",
            "durahub",
            "serve",
            "--grpc-port",
            str(self.grpc_port),
            "--http-port",
            str(self.http_port),
            "--db",
            self.db,
            "--log-level",
            self.log_level,
            *self.extra_args,
        ]

    # -- lifecycle -------------------------------------------------------------------
    def start(self, timeout: float = SERVER_READY_TIMEOUT) -> DurahubServer:
        env = server_env()
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._spawn(self.command(), env)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = SERVER_READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        last_err: Exception | str | None = None
        while time.monotonic() < deadline:
            assert self.proc is not None
            rc = self.proc.poll()
            if rc is not None:
                raise RuntimeError(
                    f"durahub server exited with code {rc} during startup; log tail:\n{self.log_tail()}"
                )
            try:
                r = httpx.get(f"{self.http_url}/v1.0/healthz", timeout=1.0)
                if r.status_code == 204:
                    return
                last_err = f"HTTP {r.status_code}"
            except httpx.HTTPError as e:
                last_err = e
            time.sleep(0.05)
        raise RuntimeError(
            f"durahub server not ready after {timeout}s (last: {last_err!r}); log tail:\n{self.log_tail()}"
        )

    def restart(self, *, hard: bool = True) -> DurahubServer:
        if hard:
            self.kill()
        else:
            self.stop()
        return self.start()

    def dispose(self) -> None:
        """Stop the server and drop its PostgreSQL database, if it has one."""
        try:
            self.stop()
        finally:
            if self.db.startswith("postgresql://"):
                drop_pg_database(self.db)

    # -- HTTP ------------------------------------------------------------------------
    def http_get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(f"{self.http_url}{path}", timeout=kw.pop("timeout", 10.0), **kw)

    def http_post(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.post(f"{self.http_url}{path}", timeout=kw.pop("timeout", 10.0), **kw)

    def metadata(self) -> dict[str, Any]:
        r = self.http_get("/v1.0/metadata")
        r.raise_for_status()
        return r.json()

    def connected_workers(self) -> int:
        return int(self.metadata().get("workflows", {}).get("connectedWorkers", 0) or 0)

    def open_app(self, app_id: str) -> tuple[int, int]:
        """The (gRPC, HTTP) ports of another app's endpoint on this engine (`POST /durahub/v1/apps`)."""
        r = self.http_post("/durahub/v1/apps", json={"app_id": app_id})
        r.raise_for_status()
        return int(r.json()["grpc_port"]), int(r.json()["http_port"])
