"""The pytest side of the harness: hooks and an autouse fixture that a conftest binds as its own,

    pytest_report_header = plugin.pytest_report_header
    pytest_runtest_makereport = plugin.pytest_runtest_makereport
    _logs_on_failure = plugin.logs_on_failure

(tests/conftest.py and examples/tests/conftest.py do). Unlike ``pytest_plugins``, which pytest accepts only in
the rootdir's conftest, this works however pytest is started (any directory or file argument).

- the report header names the server interpreter, the SDK under test and the store backend (once per run);
- every process registered with ``track()`` (servers, example apps) has the part of its log written
  during a test printed when that test fails (setup or call).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from testsupport.databases import BACKEND
from testsupport.process import ManagedProcess
from testsupport.server import SERVER_PYTHON

LOG_LINES_ON_FAILURE = 200

# Every live process started by the suite, to dump the relevant part of its log when a test fails.
_LIVE: list[ManagedProcess] = []
_HEADER_SHOWN = pytest.StashKey[bool]()


def track(p: ManagedProcess) -> None:
    _LIVE.append(p)


def untrack(p: ManagedProcess) -> None:
    if p in _LIVE:
        _LIVE.remove(p)


def pytest_report_header(config: pytest.Config) -> list[str]:
    if config.stash.get(_HEADER_SHOWN, False):  # taken in by more than one conftest
        return []
    config.stash[_HEADER_SHOWN] = True
    import importlib.metadata as md

    versions = []
    for dist in ("dapr", "dapr-ext-workflow", "fastapi"):
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
def logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """On failure, print what each live process logged while the test ran."""
    offsets = {id(p): p.log_size() for p in _LIVE}
    yield
    failed = any(
        getattr(request.node, f"rep_{when}", None) is not None and getattr(request.node, f"rep_{when}").failed
        for when in ("setup", "call")
    )
    if not failed:
        return
    for p in list(_LIVE):
        lines = p.log_text(offsets.get(id(p), 0)).splitlines()
        if len(lines) > LOG_LINES_ON_FAILURE:
            lines = [f"... ({len(lines) - LOG_LINES_ON_FAILURE} earlier lines omitted)"] + lines[-LOG_LINES_ON_FAILURE:]
        print(f"\n----- {p.name} log ({p.log_path}) during this test -----")
        print("\n".join(lines))
        print("----- end of log -----")
