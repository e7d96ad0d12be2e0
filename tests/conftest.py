"""Fixtures for every layer of the suite: a real durahub server per test module (temp SQLite db), a factory
for tests that need their own server (kill -9 / restart on the same db), and one WorkflowRuntime per module.

Each test module lists what its runtime registers in module-level ``WORKFLOWS`` and
``ACTIVITIES`` (and optionally ``RUNTIME_KWARGS``); the module-scoped ``runtime`` fixture
registers exactly those, so no other module's worker is connected to that module's server.

The harness itself (server subprocess, SDK helpers, logs on failure) is the ``testsupport`` package at the
repository root; see tests/README.md for which layer a test belongs to.
"""

from __future__ import annotations

import os

# Safety net: give every unary SDK call a deadline so a hung server fails a test instead of
# hanging it (the SDK reads this env var; it must be set before dapr is imported in 1.18).
os.environ.setdefault("DAPR_API_TIMEOUT_SECONDS", "60")

from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import dapr.ext.workflow as wf  # noqa: E402
import pytest  # noqa: E402

# The SDK instruments every gRPC client channel when opentelemetry-instrumentation-grpc is installed (it is, for
# tests/observability, whose traced app runs in a process of its own). This process's raw stubs stay plain.
try:
    from opentelemetry.instrumentation.grpc import GrpcInstrumentorClient  # noqa: E402

    GrpcInstrumentorClient().uninstrument()
except ImportError:
    pass

from testsupport import plugin  # noqa: E402
from testsupport.plugin import track, untrack  # noqa: E402
from testsupport.sdk import make_client, make_runtime  # noqa: E402
from testsupport.server import DurahubServer  # noqa: E402

# The harness's hooks and its log-on-failure fixture, for every test under this directory (bound here rather
# than through `pytest_plugins`, which pytest refuses outside the rootdir's conftest).
pytest_report_header = plugin.pytest_report_header
pytest_runtest_makereport = plugin.pytest_runtest_makereport
_logs_on_failure = plugin.logs_on_failure


def _new_server(base: Path, name: str, **kw: Any) -> DurahubServer:
    base.mkdir(parents=True, exist_ok=True)
    s = DurahubServer(db_path=base / f"{name}.db", log_path=base / f"{name}.log", **kw)
    track(s)
    return s


def _dispose(s: DurahubServer) -> None:
    try:
        s.dispose()
    finally:
        untrack(s)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[DurahubServer]:
    """A durahub server with a fresh database, shared by the tests of one module."""
    base = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    s = _new_server(base, "durahub")
    try:
        s.start()
        yield s
    finally:
        _dispose(s)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., DurahubServer]]:
    """``make(start=True, **DurahubServer kwargs)`` -> a server owned by this test.

    Use ``srv.kill()`` + ``srv.start()`` (or ``srv.restart()``) to crash and restart it on the
    same db file and ports. Every server is stopped when the test ends.
    """
    made: list[DurahubServer] = []

    def make(start: bool = True, **kw: Any) -> DurahubServer:
        s = _new_server(tmp_path, f"durahub-{len(made)}", **kw)
        made.append(s)
        if start:
            s.start()
        return s

    yield make
    for s in made:
        _dispose(s)


@pytest.fixture(scope="module")
def client(server: DurahubServer) -> Iterator[wf.DaprWorkflowClient]:
    c = make_client(server)
    yield c
    c.close()


@pytest.fixture(scope="module")
def runtime(server: DurahubServer, request: pytest.FixtureRequest) -> Iterator[wf.WorkflowRuntime]:
    """One WorkflowRuntime registering the module's WORKFLOWS and ACTIVITIES."""
    mod = request.module
    rt = make_runtime(
        server,
        workflows=getattr(mod, "WORKFLOWS", ()),
        activities=getattr(mod, "ACTIVITIES", ()),
        **getattr(mod, "RUNTIME_KWARGS", {}),
    )
    yield rt
    rt.shutdown()
