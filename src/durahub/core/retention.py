"""Workflow state retention (Dapr 1.17's `spec.workflow.stateRetentionPolicy`): which finished instances are old
enough to purge, and the Go-style durations the policy is written in.

Dapr's rules, kept here: a time to live per terminal status (`completed`, `failed`, `terminated`), with
`anyTerminal` for the statuses not given their own; it counts from the instance's completion; each instance,
parent or child, goes on its own (never recursively); and a policy reaches only instances that finish once it
is in force, never those already finished (`since_key`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from fractions import Fraction

from durahub.core.state import CANCELED, COMPLETED, FAILED, TERMINAL_STATUSES, TERMINATED, status_name

# Go's time.ParseDuration units, in microseconds (durahub's unit of time).
_UNIT_US: dict[str, Fraction] = {
    "ns": Fraction(1, 1000), "us": Fraction(1), "µs": Fraction(1), "μs": Fraction(1), "ms": Fraction(1000),
    "s": Fraction(1_000_000), "m": Fraction(60_000_000), "h": Fraction(3_600_000_000),
}
_TERM = re.compile(r"([0-9]+\.?[0-9]*|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
# Go's limit: a duration is an int64 of nanoseconds (about 292 years).
MAX_DURATION_US = (2**63 - 1) // 1000

# How often finished instances are looked at: a tenth of the shortest time to live, within these bounds, so an
# instance is purged at most that much after its time is up.
MIN_SWEEP_SECONDS = 1.0
MAX_SWEEP_SECONDS = 60.0


def parse_duration(text: str) -> int:
    """A Go duration string (`90s`, `15m`, `24h`, `1h30m`, `1.5h`, `0`) in microseconds. Raises ValueError
    for anything else, negative durations included (a time to live cannot be)."""
    body = text.strip()
    if body.startswith("-"):
        raise ValueError(f"{text!r} is negative; a time to live is 0 or more")
    body = body.removeprefix("+")
    if body == "0":
        return 0
    total = Fraction(0)
    pos = 0
    while pos < len(body):
        term = _TERM.match(body, pos)
        if term is None:
            raise ValueError(f"{text!r} is not a duration (like 90s, 15m, 24h or 1h30m)")
        total += Fraction(term.group(1)) * _UNIT_US[term.group(2)]
        pos = term.end()
    if pos == 0:
        raise ValueError(f"{text!r} is not a duration (like 90s, 15m, 24h or 1h30m)")
    if total > MAX_DURATION_US:
        raise ValueError(f"{text!r} is too long (at most about 292 years)")
    return int(total)


def format_duration(us: int) -> str:
    """Microseconds as a short Go-style duration: 5400000000 -> `1h30m`, 1500000 -> `1.5s`, 0 -> `0s`."""
    hours, rest = divmod(us, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    if rest or not (hours or minutes):
        parts.append(f"{rest / 1_000_000:.6f}".rstrip("0").rstrip(".") + "s")
    return "".join(parts)


@dataclass(frozen=True)
class RetentionPolicy:
    """Times to live in microseconds; None = not set. Empty (nothing set) means instances are kept forever."""

    any_terminal: int | None = None
    completed: int | None = None
    failed: int | None = None
    terminated: int | None = None

    @classmethod
    def of(cls, any_terminal: timedelta | None = None, completed: timedelta | None = None,
           failed: timedelta | None = None, terminated: timedelta | None = None) -> RetentionPolicy:
        """The policy from `timedelta`s (as `Config` holds them)."""
        def us(ttl: timedelta | None) -> int | None:
            return None if ttl is None else ttl // timedelta(microseconds=1)

        return cls(us(any_terminal), us(completed), us(failed), us(terminated))

    def ttl(self, status: int) -> int | None:
        """The time to live of a finished instance with this status: its own if set, else `any_terminal`
        (the only one for CANCELED, which Dapr never gives a workflow). None for active statuses."""
        if status not in TERMINAL_STATUSES:
            return None
        own: dict[int, int | None] = {COMPLETED: self.completed, FAILED: self.failed, TERMINATED: self.terminated}
        specific = own.get(status)
        return specific if specific is not None else self.any_terminal

    def ttls(self) -> dict[int, int]:
        """Each terminal status that has a time to live, with it."""
        found = {status: self.ttl(status) for status in (COMPLETED, FAILED, TERMINATED, CANCELED)}
        return {status: ttl for status, ttl in found.items() if ttl is not None}

    @property
    def enabled(self) -> bool:
        return bool(self.ttls())

    def cutoffs(self, now_us: int) -> dict[int, int]:
        """Per terminal status with a time to live: instances that finished before this time are due."""
        return {status: now_us - ttl for status, ttl in self.ttls().items()}

    def sweep_seconds(self) -> float:
        """How long to wait between looks for due instances (see MIN_SWEEP_SECONDS)."""
        shortest = min(self.ttls().values(), default=0) / 1_000_000
        return min(MAX_SWEEP_SECONDS, max(MIN_SWEEP_SECONDS, shortest / 10))

    def describe(self) -> str:
        """`completed=1h failed=24h ...` for the log, statuses in a fixed order."""
        return " ".join(f"{status_name(s).lower()}={format_duration(ttl)}" for s, ttl in self.ttls().items())


def since_key(status: int) -> str:
    """The database setting holding since when instances finishing with this status fall under a policy: the
    first time an engine ran with a time to live for it. Those that finished before are never purged by it."""
    return f"retention_since_us.{status_name(status)}"
