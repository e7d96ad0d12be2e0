"""Fixtures for the example-app tests.

``launch(module, **env)`` starts a fresh durahub server (free ports, temp SQLite db) and the
example app ``module`` under uvicorn pointed at it, and returns the running ``ExampleApp``.
Each app gets its own server: a sidecar serves one app, and two apps registering the same
workflow names on one engine would take each other's work items. Everything a module
launched is stopped when the module ends. ``pattern_server`` is one bare server per module for
the pattern scripts (run one at a time).

The server, the report header and the logs printed when a test fails (the output each live process wrote
during that test) come from the shared harness, ``testsupport``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from example_harness import STARTUP_TIMEOUT, ExampleApp

from testsupport import plugin
from testsupport.plugin import track, untrack
from testsupport.process import ManagedProcess
from testsupport.server import DurahubServer

# The harness's hooks and its log-on-failure fixture, for every test under this directory (bound here rather
# than through `pytest_plugins`, which pytest refuses outside the rootdir's conftest).
pytest_report_header = plugin.pytest_report_header
pytest_runtest_makereport = plugin.pytest_runtest_makereport
_logs_on_failure = plugin.logs_on_failure


def _new_server(workdir: Path) -> DurahubServer:
    server = DurahubServer(workdir / "durahub.db", workdir / "durahub.log")
    track(server)
    return server


def _dispose(p: ManagedProcess) -> None:
    try:
        if isinstance(p, DurahubServer):
            p.dispose()
        else:
            p.stop()
    finally:
        untrack(p)


@pytest.fixture(scope="module")
def launch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ExampleApp]]:
    started: list[ManagedProcess] = []

    def _launch(module: str, **env: str) -> ExampleApp:
        workdir: Path = tmp_path_factory.mktemp(module.split(".")[1])
        server = _new_server(workdir)
        started.append(server)
        server.start(timeout=STARTUP_TIMEOUT)
        app = ExampleApp(module, server, workdir, env)
        track(app)
        started.append(app)
        app.start()
        return app

    yield _launch
    # Apps first (their workers disconnect cleanly), then the servers.
    for p in [p for p in started if isinstance(p, ExampleApp)] + [p for p in started if isinstance(p, DurahubServer)]:
        _dispose(p)


@pytest.fixture(scope="module")
def pattern_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DurahubServer]:
    server = _new_server(tmp_path_factory.mktemp("patterns"))
    try:
        server.start(timeout=STARTUP_TIMEOUT)
        yield server
    finally:
        _dispose(server)
