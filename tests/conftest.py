"""Fixtures: a real durahub server per test module (temp SQLite db), a factory for tests that
need their own server (kill -9 / restart on the same db), and one WorkflowRuntime per module.

Each test module lists what its runtime registers in module-level ``WORKFLOWS`` and
``ACTIVITIES`` (and optionally ``RUNTIME_KWARGS``); the module-scoped ``runtime`` fixture
registers exactly those, so no other module's worker is connected to that module's server.
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
from helpers import (  # noqa: E402
    BACKEND,
    SERVER_PYTHON,
    DurahubServer,
    drop_pg_database,
    make_client,
    make_runtime,
)

# Every server started by the suite, to dump the relevant part of its log when a test fails.
_LIVE_SERVERS: list[DurahubServer] = []


def pytest_report_header(config: pytest.Config) -> list[str]:
    import importlib.metadata as md

    versions = []
    for dist in ("dapr", "dapr-ext-workflow"):
        try:
            versions.append(f"{dist}=={md.version(dist)}")
        except md.PackageNotFoundError:
            pass
    return [f"durahub server python: {SERVER_PYTHON}", f"sdk: {', '.join(versions)}", f"store backend: {BACKEND}"]


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture(autouse=True)
def _server_logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """On failure, print what each live server logged while the test ran."""
    offsets = {id(s): s.log_size() for s in _LIVE_SERVERS}
    yield
    failed = any(
        getattr(request.node, f"rep_{when}", None) is not None and getattr(request.node, f"rep_{when}").failed
        for when in ("setup", "call")
    )
    if not failed:
        return
    for s in list(_LIVE_SERVERS):
        start = offsets.get(id(s), 0)
        text = s.log_text(start)
        lines = text.splitlines()
        if len(lines) > 200:
            lines = [f"... ({len(lines) - 200} earlier lines omitted)"] + lines[-200:]
        print(f"\n----- durahub server log ({s.log_path}, grpc {s.grpc_port}) during this test -----")
        print("\n".join(lines))
        print("----- end of server log -----")


def _new_server(base: Path, name: str, **kw: Any) -> DurahubServer:
    base.mkdir(parents=True, exist_ok=True)
    s = DurahubServer(db_path=base / f"{name}.db", log_path=base / f"{name}.log", **kw)
    _LIVE_SERVERS.append(s)
    return s


def _dispose(s: DurahubServer) -> None:
    try:
        s.stop()
    finally:
        if s in _LIVE_SERVERS:
            _LIVE_SERVERS.remove(s)
        if s.db.startswith("postgresql://"):
            drop_pg_database(s.db)


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
