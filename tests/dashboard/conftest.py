"""Real-browser fixtures for the dashboard: Playwright for Python driving the system's Chromium
(`/usr/bin/chromium`, Debian's package; never `playwright install`). Every page fails its test on a console
error, an uncaught exception, a JavaScript dialog, or a request to any origin but the server's.

Screenshots go to $DURAHUB_TEST_ARTIFACTS (default `.test-artifacts/dashboard/` at the repository root).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from testsupport.process import REPO_ROOT

try:
    from playwright import sync_api
except ImportError:  # the legacy-SDK venv has no Playwright: the browser tests skip there
    sync_api = None
CHROMIUM = os.environ.get("DURAHUB_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"

ARTIFACTS = Path(os.environ.get("DURAHUB_TEST_ARTIFACTS") or REPO_ROOT / ".test-artifacts" / "dashboard")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/dashboard/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


# Per module, not per session: Playwright's sync API runs an event loop in the main thread while it is open, and
# the rest of the suite's `asyncio.run` calls must not find it there.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if sync_api is None:
        pytest.skip("playwright is not installed (pip install playwright)")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


class PageWatch:
    """What a page did that a test must not tolerate."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.problems: list[str] = []
        self.requests: list[Any] = []
        self.allowed_console: list[str] = []

    def console(self, message: Any) -> None:
        if message.type == "error" and not any(a in message.text for a in self.allowed_console):
            self.problems.append(f"console error: {message.text}")


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., tuple[Any, PageWatch]]]:
    """`open_page(origin, path, **context options)` -> (page, watch); checked for problems when the test ends."""
    opened: list[tuple[Any, PageWatch]] = []

    def make(origin: str, path: str = "/dashboard/", **context: Any) -> tuple[Any, PageWatch]:
        ctx = browser.new_context(viewport=context.pop("viewport", {"width": 1400, "height": 900}), **context)
        page = ctx.new_page()
        watch = PageWatch(origin)

        def route(r: Any) -> None:
            if r.request.url.startswith(origin + "/") or r.request.url.startswith(("data:", "blob:")):
                r.continue_()
            else:
                watch.problems.append(f"request to another origin: {r.request.url}")
                r.abort()

        page.route("**/*", route)
        page.on("console", watch.console)
        page.on("pageerror", lambda exc: watch.problems.append(f"page error: {exc}"))
        page.on("dialog", lambda d: (watch.problems.append(f"javascript dialog: {d.message}"), d.dismiss()))
        page.on("request", lambda request: watch.requests.append(request))
        page.set_default_timeout(20_000)
        page.goto(origin + path)
        opened.append((page, watch))
        return page, watch

    yield make
    problems = [p for _, watch in opened for p in watch.problems]
    for page, _ in opened:
        page.context.close()
    assert not problems, problems
