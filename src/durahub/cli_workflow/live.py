"""`list --watch` and `history --follow`: redraw a view every second until Ctrl-C, like `watch(1)`.

A view that fails to load (the engine restarting, say) shows the error in its frame and is tried again on the
next tick instead of ending the watch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from durahub.cli_workflow.client import CliError
from durahub.cli_workflow.output import Screen

INTERVAL_SECONDS = 1.0


def watch(title: str, render: Callable[[], str], interval: float = INTERVAL_SECONDS) -> None:
    """Draw `render()` under a title line every `interval` seconds; returns on Ctrl-C."""
    screen = Screen()
    try:
        while True:
            try:
                body = render()
            except CliError as exc:
                body = f"Error: {exc}"
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            screen.draw(f"Every {interval:g}s: {title}    {stamp}\n\n{body}")
            time.sleep(interval)
    except KeyboardInterrupt:
        return
