"""Test-side helpers: run a durahub server as a subprocess and drive it with the official SDK.

Nothing here imports durahub: the suite also runs in a virtualenv that has only the legacy
(1.18) SDK, where the server is launched with another interpreter (DURAHUB_SERVER_PYTHON).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import dapr.ext.workflow as wf
import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVER_PYTHON = os.environ.get("DURAHUB_SERVER_PYTHON", sys.executable)
# Source tree put first on the server's PYTHONPATH (override to run the suite against a copy).
SERVER_SRC = os.environ.get("DURAHUB_SERVER_SRC", str(REPO_ROOT / "src"))
SERVER_READY_TIMEOUT = float(os.environ.get("DURAHUB_TEST_SERVER_READY_TIMEOUT", "30"))

# DURAHUB_TEST_BACKEND=postgres runs every server on a fresh database of the local PostgreSQL.
BACKEND = os.environ.get("DURAHUB_TEST_BACKEND", "sqlite")
PG_ADMIN_DSN = os.environ.get("DURAHUB_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _psql(sql: str) -> None:
    subprocess.run(["psql", PG_ADMIN_DSN, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True,
                   capture_output=True, timeout=60)


def create_pg_database() -> str:
    """A throwaway database on the admin server; returns its URL."""
    name = f"durahub_test_{uuid.uuid4().hex[:12]}"
    _psql(f"CREATE DATABASE {name}")
    return PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with contextlib.suppress(subprocess.SubprocessError):
        _psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# Which SDK generation is installed in this interpreter.
HAS_MANAGEMENT_API = hasattr(wf.DaprWorkflowClient, "get_workflow_history")

TERMINAL = {wf.WorkflowStatus.COMPLETED, wf.WorkflowStatus.FAILED, wf.WorkflowStatus.TERMINATED}


def new_id(prefix: str = "t") -> str:
    """A unique instance id (letters, digits and '-' only, well under 64 chars)."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


class DurahubServer:
    """One `python -m durahub serve` subprocess with its own log file.

    The db path and ports are fixed at construction so that the same server can be killed
    and started again on the same database file and ports.
    """

    def __init__(
        self,
        db_path: Path,
        log_path: Path,
        grpc_port: int | None = None,
        http_port: int | None = None,
        log_level: str = "info",
        extra_args: Iterable[str] = (),
    ) -> None:
        self.db_path = Path(db_path)
        # The --db value: the SQLite file, or a fresh PostgreSQL database that lives as long as this object.
        self.db = create_pg_database() if BACKEND == "postgres" else str(self.db_path)
        self.log_path = Path(log_path)
        self.grpc_port = grpc_port or free_port()
        self.http_port = http_port or free_port()
        self.log_level = log_level
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    # -- addresses -------------------------------------------------------------------
    @property
    def port(self) -> str:
        """The gRPC port as the SDK wants it (a string)."""
        return str(self.grpc_port)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

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
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        env = dict(os.environ)
        # Works whether or not durahub is pip-installed into the server interpreter.
        src = SERVER_SRC
        env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== test harness: start #{self.starts}: {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=str(REPO_ROOT),
            )
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

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

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

    def restart(self, *, hard: bool = True) -> DurahubServer:
        if hard:
            self.kill()
        else:
            self.stop()
        return self.start()

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


# ----------------------------------------------------------------------------------------
# SDK side
# ----------------------------------------------------------------------------------------

_MARKERS = ("_workflow_registered", "_activity_registered")


def _clear_registration_markers(fn: Callable[..., Any], *, drop_name: bool = False) -> None:
    """The SDK marks a function as registered (and refuses to register it again), so a
    function can normally live in one WorkflowRuntime per process. Tests start several
    runtimes over time, so forget the marks of the previous one."""
    for marker in _MARKERS:
        fn.__dict__.pop(marker, None)
    if drop_name:
        fn.__dict__.pop("_dapr_alternate_name", None)


def make_runtime(
    server: DurahubServer,
    *,
    workflows: Iterable[Callable[..., Any] | tuple[Callable[..., Any], str]] = (),
    activities: Iterable[Callable[..., Any] | tuple[Callable[..., Any], str]] = (),
    versioned: Iterable[tuple[Callable[..., Any], str, str, bool]] = (),
    **runtime_kwargs: Any,
) -> wf.WorkflowRuntime:
    """Build and start a WorkflowRuntime connected to ``server``.

    ``workflows``/``activities`` items are functions or (function, name) pairs;
    ``versioned`` items are (function, workflow name, version name, is_latest).
    """
    rt = wf.WorkflowRuntime(host="127.0.0.1", port=server.port, **runtime_kwargs)
    for item in workflows:
        fn, name = item if isinstance(item, tuple) else (item, None)
        _clear_registration_markers(fn, drop_name=name is not None)
        rt.register_workflow(fn, name=name)
    for item in activities:
        fn, name = item if isinstance(item, tuple) else (item, None)
        _clear_registration_markers(fn, drop_name=name is not None)
        rt.register_activity(fn, name=name)
    for fn, name, version_name, is_latest in versioned:
        _clear_registration_markers(fn, drop_name=True)
        rt.register_versioned_workflow(fn, name=name, version_name=version_name, is_latest=is_latest)
    rt.start()
    return rt


@contextlib.contextmanager
def running_runtime(server: DurahubServer, **kwargs: Any) -> Iterator[wf.WorkflowRuntime]:
    rt = make_runtime(server, **kwargs)
    try:
        yield rt
    finally:
        rt.shutdown()


def make_client(server: DurahubServer) -> wf.DaprWorkflowClient:
    return wf.DaprWorkflowClient(host="127.0.0.1", port=server.port)


def state_of(client: wf.DaprWorkflowClient, instance_id: str) -> wf.WorkflowState | None:
    return client.get_workflow_state(instance_id, fetch_payloads=True)


def status_of(client: wf.DaprWorkflowClient, instance_id: str) -> wf.WorkflowStatus | None:
    st = client.get_workflow_state(instance_id, fetch_payloads=False)
    return None if st is None else st.runtime_status


def wait_for_status(
    client: wf.DaprWorkflowClient,
    instance_id: str,
    statuses: wf.WorkflowStatus | Iterable[wf.WorkflowStatus],
    timeout: float = 20.0,
) -> wf.WorkflowState:
    wanted = {statuses} if isinstance(statuses, wf.WorkflowStatus) else set(statuses)

    def check() -> wf.WorkflowState | None:
        st = client.get_workflow_state(instance_id, fetch_payloads=True)
        return st if st is not None and st.runtime_status in wanted else None

    return wait_until(
        check,
        timeout=timeout,
        message=lambda: (
            f"{instance_id} never reached {sorted(s.name for s in wanted)}; "
            f"now {status_of(client, instance_id)}"
        ),
    )


def wait_for_custom_status(
    client: wf.DaprWorkflowClient, instance_id: str, value: str, timeout: float = 20.0
) -> wf.WorkflowState:
    def check() -> wf.WorkflowState | None:
        st = client.get_workflow_state(instance_id, fetch_payloads=True)
        return st if st is not None and st.serialized_custom_status == value else None

    return wait_until(check, timeout=timeout, message=f"{instance_id}: custom status never became {value!r}")


def complete(client: wf.DaprWorkflowClient, instance_id: str, timeout: int = 30) -> wf.WorkflowState:
    """wait_for_workflow_completion that never returns None silently."""
    st = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=timeout)
    assert st is not None, f"wait_for_workflow_completion({instance_id}) returned None"
    return st


def output_of(st: wf.WorkflowState) -> Any:
    assert st.serialized_output is not None, f"{st.instance_id} has no output ({st.runtime_status})"
    return json.loads(st.serialized_output)


def describe(st: wf.WorkflowState | None) -> str:
    if st is None:
        return "<no such instance>"
    fd = st.failure_details
    failure = f" failure={fd.error_type}: {fd.message}" if fd is not None else ""
    return (
        f"{st.instance_id} status={st.runtime_status.name} output={st.serialized_output!r}"
        f" custom={st.serialized_custom_status!r}{failure}"
    )


def assert_completed(st: wf.WorkflowState) -> Any:
    assert st.runtime_status == wf.WorkflowStatus.COMPLETED, describe(st)
    return output_of(st)


def retry_unavailable(fn: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Call ``fn``, retrying while the gRPC channel is still reconnecting (UNAVAILABLE)
    after a server restart."""
    import grpc

    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() >= deadline:
                raise
            time.sleep(0.2)
