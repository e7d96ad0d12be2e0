"""Fixtures for the example-app tests.

``launch(module, **env)`` starts a fresh durahub server (free ports, temp SQLite db) and the
example app ``module`` under uvicorn pointed at it, and returns the running ``ExampleApp``.
Each app gets its own server: a sidecar serves one app, and two apps registering the same
workflow names on one engine would take each other's work items. Everything a module
launched is stopped when the module ends. ``pattern_server`` is one bare server per module for
the pattern scripts (run one at a time).

When a test fails, the output each live process wrote during that test is printed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from example_harness import SERVER_PYTHON, DurahubServer, ExampleApp, _Process

_LIVE: list[_Process] = []


def pytest_report_header(config: pytest.Config) -> list[str]:
    import importlib.metadata as md

    versions = []
    for dist in ("dapr", "dapr-ext-workflow", "fastapi"):
        try:
            versions.append(f"{dist}=={md.version(dist)}")
        except md.PackageNotFoundError:
            pass
    return [f"examples: durahub server python {SERVER_PYTHON}; {', '.join(versions)}"]


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture(autouse=True)
def _logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    offsets = {id(p): p.log_size() for p in _LIVE}
    yield
    failed = any(
        getattr(request.node, f"rep_{when}", None) is not None and getattr(request.node, f"rep_{when}").failed
        for when in ("setup", "call")
    )
    if not failed:
        return
    for p in list(_LIVE):
        lines = p.log_text(offsets.get(id(p), 0)).splitlines()[-150:]
        print(f"\n----- {p.name} ({p.log_path}) during this test -----")
        print("\n".join(lines))


def _track(p: _Process) -> None:
    _LIVE.append(p)


def _dispose(p: _Process) -> None:
    try:
        p.stop()
    finally:
        if p in _LIVE:
            _LIVE.remove(p)


@pytest.fixture(scope="module")
def launch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ExampleApp]]:
    started: list[_Process] = []

    def _launch(module: str, **env: str) -> ExampleApp:
        workdir: Path = tmp_path_factory.mktemp(module.split(".")[1])
        server = DurahubServer(workdir)
        _track(server)
        started.append(server)
        server.start()
        app = ExampleApp(module, server, workdir, env)
        _track(app)
        started.append(app)
        app.start()
        return app

    yield _launch
    # Apps first (their workers disconnect cleanly), then the servers.
    for p in [p for p in started if isinstance(p, ExampleApp)] + [p for p in started if isinstance(p, DurahubServer)]:
        _dispose(p)


@pytest.fixture(scope="module")
def pattern_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DurahubServer]:
    server = DurahubServer(tmp_path_factory.mktemp("patterns"))
    _track(server)
    try:
        server.start()
        yield server
    finally:
        _dispose(server)
