"""Times and durations as `dapr workflow` reads and prints them: Go duration strings (`300ms`, `1.5h`,
`2h45m`), timestamps, Kubernetes-style ages (`5m12s`, `3d4h`) and dapr's elapsed times (`1.25s`, `3.0m`).

Pure functions; `now` is always passed in.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_DURATION = re.compile(r"^([-+]?)((?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+)$")
_GO_TERM = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> float | None:
    """Seconds in a Go duration string (`1h30m`, `-2.5s`, `0`), or None when it is not one."""
    text = text.strip()
    if text in ("0", "+0", "-0"):
        return 0.0
    match = _GO_DURATION.match(text)
    if match is None:
        return None
    seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _GO_TERM.findall(match.group(2)))
    return -seconds if match.group(1) == "-" else seconds


def parse_timestamp(text: str) -> datetime | None:
    """An ISO-8601 / RFC 3339 timestamp or date (`2023-01-02T15:04:05Z`, `2023-01-02`); UTC when it names no
    zone. None when it is not one."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def parse_when(text: str, now: datetime, *, past: bool) -> datetime:
    """dapr's "duration or timestamp" flags: a duration counts back from `now` (`past`, as for `--filter-max-age`
    and `--all-older-than`) or forward (`--start-time`); anything else must be a timestamp."""
    seconds = parse_go_duration(text)
    if seconds is not None:
        return now + timedelta(seconds=-seconds if past else seconds)
    stamp = parse_timestamp(text)
    if stamp is None:
        raise ValueError(f"{text!r} is neither a duration (300ms, 1.5h, 2h45m) nor a timestamp (2023-01-02T15:04:05Z)")
    return stamp


def parse_api_time(text: str) -> datetime:
    """A timestamp as the API writes it (`2026-12-03T13:57:00.045480Z`; fractions beyond microseconds dropped)."""
    return datetime.fromisoformat(text)


def rfc3339(value: datetime) -> str:
    """Whole seconds, UTC, like Go's time.Time truncated to the second: `2026-12-03T13:57:00Z`."""
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def human_age(seconds: float) -> str:
    """How long ago, with two significant units at most, as kubectl prints ages (`45s`, `5m12s`, `3h`, `2d4h`)."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        return _two(minutes, "m", whole % 60, "s")
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return _two(hours, "h", minutes % 60, "m")
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return _two(days, "d", hours % 24, "h")
    if hours < 24 * 365 * 2:
        return f"{days}d"
    if hours < 24 * 365 * 8:
        return _two(days // 365, "y", days % 365, "d")
    return f"{days // 365}y"


def _two(major: int, major_unit: str, minor: int, minor_unit: str) -> str:
    return f"{major}{major_unit}" if minor == 0 else f"{major}{major_unit}{minor}{minor_unit}"


def humanize_elapsed(seconds: float) -> str:
    """A time between two events as dapr's history prints it (`850.0µs`, `12.3ms`, `1.25s`, `3.0m`); empty for
    none at all."""
    seconds = abs(seconds)
    if seconds == 0:
        return ""
    if seconds < 1e-6:
        return f"{round(seconds * 1e9)}ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f}µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"
