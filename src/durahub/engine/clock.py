"""The engine's clock: where every timestamp it writes and every timer due time it compares comes from.

`Clock` is the wall clock. `VirtualClock` runs at wall-clock speed plus an offset that only grows: the time
skipper (`engine/skipping.py`) moves it forward to the next timer, so a test sees a 30-day timer fire at once
while activities still take the real time they take. Leases between engine processes stay on wall time
(`work.now_us`): they are about processes being alive, not about workflow time.
"""

from __future__ import annotations

import time


class Clock:
    """Wall time, integer microseconds since the Unix epoch."""

    def now_us(self) -> int:
        return time.time_ns() // 1000


class VirtualClock(Clock):
    """Wall time shifted by what was skipped (and by a chosen start instant)."""

    def __init__(self, start_us: int | None = None) -> None:
        self._offset_us = 0 if start_us is None else start_us - time.time_ns() // 1000
        self.skipped_us = 0

    def now_us(self) -> int:
        return time.time_ns() // 1000 + self._offset_us

    def advance(self, delta_us: int) -> None:
        if delta_us > 0:
            self._offset_us += delta_us
            self.skipped_us += delta_us

    def advance_to(self, at_us: int) -> None:
        self.advance(at_us - self.now_us())
