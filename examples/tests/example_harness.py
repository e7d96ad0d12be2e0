"""The example-app side of the example tests: apps under uvicorn as subprocesses pointed at a durahub
server through DAPR_GRPC_PORT / DAPR_HTTP_PORT, and pattern scripts run to completion.

The server, ports, polling and logs come from the shared harness (``testsupport``). Nothing here imports
durahub or the apps: the tests also run in a virtualenv with the legacy SDK where durahub is not
importable; the server then runs under DURAHUB_SERVER_PYTHON.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from testsupport.process import REPO_ROOT, ManagedProcess, free_port, wait_until
from testsupport.server import DurahubServer

APP_PYTHON = sys.executable  # apps run with the SDK under test
STARTUP_TIMEOUT = float(os.environ.get("EXAMPLES_STARTUP_TIMEOUT", "40"))


class ExampleApp(ManagedProcess):
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
            new_session=True,
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
